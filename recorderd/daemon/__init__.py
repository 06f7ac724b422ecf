"""The recording daemon: settings, the Zenoh bus, the intake and writer thread, the
service lifecycle, systemd notification and the ``recorderd``/``recorderctl`` CLIs.

The only package of ``recorderd`` that imports zenoh (in :mod:`recorderd.daemon.bus`).
"""

"""The session folder on disk: its layout, writer, journal, recovery, lock and control log.

Everything that defines or touches a session folder (``docs/recording-format.md``) lives
here, and the analysis reads sessions through this package (and the wire protocol)
only. Importing it is cheap: the modules that need h5py import it themselves.
"""

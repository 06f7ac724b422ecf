"""``python -m recorderd``."""

from recorderd.daemon.cli import main

main()

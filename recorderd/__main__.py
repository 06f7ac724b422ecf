"""``python -m recorderd``."""

from recorderd.cli import main

main()

"""``python -m brain_nodes`` runs the ``brain-node`` command."""

from __future__ import annotations

from brain_nodes.cli import main

if __name__ == "__main__":
    main()

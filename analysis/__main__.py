"""``python -m analysis``: the ``sim-analyzer`` command line."""

from __future__ import annotations

from analysis.cli import main

if __name__ == "__main__":
    main()

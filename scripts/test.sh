#!/usr/bin/env bash
# The test command: lint, type-check, then the whole test suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
echo "== ruff" && ruff check . && ruff format --check .
echo "== mypy" && mypy
echo "== pytest" && exec python -m pytest "$@"

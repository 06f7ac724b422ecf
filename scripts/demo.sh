#!/usr/bin/env bash
# The demo: recorderd plus three brain nodes on loopback, then what the session holds.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec python scripts/demo.py "$@"

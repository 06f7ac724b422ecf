#!/usr/bin/env bash
# The test command: lint, type-check, then the whole test suite.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
# Optional system tools some tests compare against (skipped with a reason where absent):
# installed here when this machine allows it (root and apt-get), never a failure if not.
if ! command -v h5clear >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing hdf5-tools (h5clear, for the superblock test)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get install -y -q hdf5-tools >/dev/null 2>&1 ||
        { timeout 300 apt-get update -q >/dev/null 2>&1 &&
          timeout 300 apt-get install -y -q hdf5-tools >/dev/null 2>&1; } ||
        echo "   (not installed: that test is skipped)"
fi
# Headless Chromium for the HTML report test (Debian's package; skipped where absent).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium (headless, for the HTML report test)"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get install -y -q chromium >/dev/null 2>&1 ||
        { timeout 300 apt-get update -q >/dev/null 2>&1 &&
          timeout 600 apt-get install -y -q chromium >/dev/null 2>&1; } ||
        echo "   (not installed: the browser test is skipped)"
fi
# Each step fails the run: `set -e` (from env.sh) does not stop at a failure inside an
# `a && b && c` list, which let a ruff failure pass before.
echo "== ruff"
ruff check . || exit 1
ruff format --check . || exit 1
echo "== mypy"
mypy || exit 1
echo "== pytest" && exec python -m pytest "$@"

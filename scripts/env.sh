# Sourced by the other scripts: make ./.venv with the project installed, once.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
# Re-installed when pyproject.toml or a C module's source changes (they are compiled then).
stamp="$VENV/.installed-$(cat pyproject.toml recorderd/*/_fast*.c | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log="$VENV/install.log"
    echo "setting up $VENV (first run, or pyproject.toml or a C module changed): installing the project" \
        "and its dependencies with pip; this takes about a minute (pip's output: $log)..." >&2
    started=$SECONDS
    "$PY" -m venv "$VENV"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e ".[test]"; } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "installing into $VENV failed; pip's whole output is in $log" >&2
        return 1 2>/dev/null || exit 1
    fi
    rm -f "$VENV"/.installed-*
    touch "$stamp"
    echo "installed in $((SECONDS - started)) s" >&2
fi
export PATH="$VENV/bin:$PATH"

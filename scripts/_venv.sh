#!/usr/bin/env bash
# Sourced by demo.sh and test.sh: create or reuse the project's virtual environment and install
# the project (editable, with test extras) into it. Re-installs only when pyproject.toml changed.
#   PYTHON=python3.12 ./scripts/test.sh        choose the interpreter (3.10 or newer)
#   NNUNET_DIFFREFINE_VENV=/path/venv ...      choose where the environment lives (default: .venv)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${NNUNET_DIFFREFINE_VENV:-$REPO/.venv}
PYTHON=${PYTHON:-python3}

if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "nnunet-diffrefine needs Python 3.10 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1 || echo missing)." >&2
  echo "Set PYTHON=/path/to/python3.10+ and try again." >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating the virtual environment $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.nnunet-diffrefine-installed"
want=$("$VENV/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$REPO/pyproject.toml")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing nnunet-diffrefine and its dependencies into $VENV (the first time takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$REPO[test]"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"

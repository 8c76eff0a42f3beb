#!/usr/bin/env bash
# Quick start, command 2: run the test suite. Extra arguments go to pytest
# (e.g. -m "not slow" to leave out the end-to-end tests that run real nnU-Net commands).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"

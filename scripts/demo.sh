#!/usr/bin/env bash
# Quick start, command 1: run the demo on synthetic BraTS-like data (CPU).
# Extra arguments go to 'nnunet-diffrefine demo' (e.g. --tiny, -o DIR).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
cd "$REPO"
exec "$VENV/bin/nnunet-diffrefine" demo "$@"

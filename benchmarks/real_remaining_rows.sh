#!/usr/bin/env bash
# The rows of the real-data benchmark (issue #21) that need more than one sitting on 2 CPU cores, in order:
#   1. Swin-UNETR, one fold per step (about 2 h each); a fold the results already hold is not retrained;
#   2. the conditioned MedSegDiff and DDPM on Swin-UNETR's priors (seed 000's Table 3; about 2 h);
#   3. MedNeXt retrained (about 2 h) and CoMNeT, CorrDiff on its priors (about 1.5 h).
# Every step resumes: stages whose outputs exist in the work folder are skipped and trainings continue
# from their last checkpoint (every 5 epochs). Steps 2 and 3 need every fold of their base model in the
# work folder and retrain the folds it lacks. Start it first in every sitting:
#   nohup benchmarks/real_remaining_rows.sh [--real-root DIR] [--work DIR] > /tmp/remaining.log 2>&1 &
# The code runs from a snapshot of HEAD (a clone in a new temporary folder), so that edits made meanwhile
# never reach a running stage; the results, per-case scores only, land in this checkout's
# benchmarks/results/refinement_real_run8_bases.{json,md}, paired with run 8's rows by case.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REAL_ROOT=$REPO/../shared/real/brats2018
WORK=/tmp/benchwork
PY=$REPO/.venv/bin/python
while [ $# -gt 0 ]; do
  case $1 in
    --real-root) REAL_ROOT=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --python) PY=$2; shift 2 ;;
    *) echo "real_remaining_rows.sh: unknown argument '$1' (--real-root DIR, --work DIR, --python EXE)" >&2; exit 2 ;;
  esac
done
# paths given relative to where the script was started, kept valid after the cd below (-s: symlinks
# kept, so that a virtual environment's python stays that environment's)
REAL_ROOT=$(realpath -ms -- "$REAL_ROOT")
WORK=$(realpath -ms -- "$WORK")
case $PY in */*) PY=$(realpath -ms -- "$PY") ;; esac
cd "$REPO"  # the results path stays relative, so the command line the page prints holds no local path
OUT=benchmarks/results/refinement_real_run8_bases
[ -f "$OUT.json" ] || { echo "real_remaining_rows.sh: $OUT.json is missing (the rows to pair with)" >&2; exit 1; }
SNAPSHOT=$(mktemp -d /tmp/real_remaining.XXXXXX)
git clone -q "$REPO" "$SNAPSHOT/repo"
echo "code: $(git -C "$SNAPSHOT/repo" rev-parse --short HEAD) in $SNAPSHOT/repo; work folder: $WORK"

bench() {
  echo "== $(date -u +%H:%M:%S) bench_refinement_real.py $*"
  PYTHONPATH="$SNAPSHOT/repo" "$PY" "$SNAPSHOT/repo/benchmarks/bench_refinement_real.py" \
    --real-root "$REAL_ROOT" --work "$WORK" --epochs 50 --refiner-patch 48 48 48 \
    --refiner-set corrdiff:inference_steps=4 --reference "$OUT.json" -o "$OUT" "$@"
}

scored() {  # scored ROW FOLD: does the committed JSON hold ROW's fold FOLD (a complete row or a partial fold)?
  "$PY" - "$OUT.json" "$1" "$2" <<'EOF'
import json, sys
record, row, fold = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
sys.exit(0 if row in record["per_case"] or fold in record.get("partial_per_case", {}).get(row, {}) else 1)
EOF
}

bench_unless_scored() {  # bench_unless_scored BASE ROW...: the refined ROWs on BASE, unless all are complete
  local base=$1 row missing=0
  shift
  for row in "$@"; do scored "$row" complete || missing=1; done
  if [ "$missing" = 0 ]; then
    echo "== $*: in $OUT.json already"
  else
    bench --bases "$base" --refined "$@"
  fi
}

for fold in 0 1 2; do
  if scored Swin-UNETR "$fold"; then
    echo "== Swin-UNETR fold $fold: in $OUT.json already"
  else
    bench --bases Swin-UNETR --refined --run-folds "$fold"
  fi
done
# MedSegDiff first (about 30 min with its gate-off row, against 1.5 h for the DDPM): a sitting that ends
# between the two still completes a row; the page lists rows in the benchmark's own order whatever this is
bench_unless_scored Swin-UNETR "MedSegDiff (cond) on Swin-UNETR" "MedSegDiff (cond) on Swin-UNETR (gate off)" \
  "DDPM (cond) on Swin-UNETR" "DDPM (cond) on Swin-UNETR (gate off)"
bench_unless_scored MedNeXt "CoMNeT (MedNeXt + CorrDiff)" "CoMNeT (MedNeXt + CorrDiff) (gate off)"
echo "== $(date -u +%H:%M:%S) every row done; rm -rf $SNAPSHOT when no longer needed"

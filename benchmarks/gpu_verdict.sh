#!/usr/bin/env bash
# The fitted-start verdict on one GPU (docs/results.md): benchmarks/verdict.sh's fitted pairs (per seed each
# method's stage 1, then its baseline continued, the method, its oracle and its shuffled control) with SCALE
# times the demo's batches per epoch, several runs at once on the one GPU, all under one timeout; then one
# report, $OUT/gpu_verdict.json: each pair's `vitool compare` (rows against the baseline continued, the method
# against its shuffled control) and each row's association precision per epoch. A run the timeout stops is
# left to resume: rerunning the script continues where it stopped; the timeout stops every run it started.
#
# Sizing (not measured on a GPU yet): a demo run trains 16 x 30 batches of 64 images at 128x64 on MobileNetV2;
# at SCALE 10 a fitted row sees about 0.3-0.6 million images. Each pair of one seed is 5 runs; PARALLEL
# processes share the GPU and its CPU cores, reading a pre-resized image cache. Set SEEDS, SCALE and
# PARALLEL from benchmarks/gpu_speed.py's images/s so the work fits TIMEOUT.
#
# vitool is used from src/ (no install), as benchmarks/gpu_check.sh does.
#
# Usage:  benchmarks/gpu_verdict.sh      (OUT=dir SEEDS="0 1 2" SCALE=10 PARALLEL=4 TIMEOUT=480 DEVICE=cuda)
#         PAIRS=fitted-experts SEEDS="0 1" EPOCHS=1 SCALE=0 DEVICE=cpu EXTRA="--batches-per-epoch 1" \
#           SYNTH="--train-ids 24 --test-ids 8" benchmarks/gpu_verdict.sh   (the CPU check: tests/test_benchmarks.py)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-verdict}
SEEDS=${SEEDS:-0 1 2}
SCALE=${SCALE:-10}
PARALLEL=${PARALLEL:-4}
TIMEOUT=${TIMEOUT:-480}
DEVICE=${DEVICE:-cuda}
PAIRS=${PAIRS:-fitted-otla fitted-pclhd fitted-mult fitted-experts}
PY=${PYTHON:-python3}
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
mkdir -p "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
printf '#!/bin/sh\nexec %s -m vitool "$@"\n' "$PY" > "$OUT/vitool"
chmod +x "$OUT/vitool"
export VITOOL=$OUT/vitool DATA=$OUT/data
# shellcheck disable=SC2086  # SYNTH: extra vitool synth options (the CPU check's small dataset)
[ -d "$DATA" ] || "$VITOOL" synth "$DATA" --layout sysu --seed 0 ${SYNTH:-} >/dev/null || exit 1
batches=$((30 * SCALE))
opts="--device $DEVICE --set workers=$([ "$DEVICE" = cpu ] && echo 0 || echo 4)"
[ "$SCALE" -gt 0 ] && opts="$opts --batches-per-epoch $batches"
[ -n "${EPOCHS:-}" ] && opts="$opts --epochs $EPOCHS"
export TRAIN_OPTS="$opts ${EXTRA:-}"
start=$(date +%s)

# one verdict.sh per (seed, pair), PARALLEL at a time; each resumes what an earlier call left
jobs_file=$OUT/jobs.txt
: > "$jobs_file"
for s in $SEEDS; do for pair in $PAIRS; do echo "$s $pair" >> "$jobs_file"; done; done
run_one() {
  SEEDS=$1 benchmarks/verdict.sh "$OUT/runs" "$2" > "$OUT/runs/$2-s$1.out" 2>&1
}
export -f run_one
export OUT
# xargs in its own process group, so that the timeout stops every training run under it, not only xargs
set -m
xargs -P "$PARALLEL" -L 1 bash -c 'run_one "$0" "$1"' < "$jobs_file" &
runs=$!
set +m
(sleep "$TIMEOUT"; touch "$OUT/stopped"; kill -TERM -- "-$runs") >/dev/null 2>&1 &
timer=$!
wait "$runs"
pkill -P "$timer" sleep 2>/dev/null  # runs that end early leave no timer behind
kill "$timer" 2>/dev/null
rc=0
[ -f "$OUT/stopped" ] && rc=124 && rm -f "$OUT/stopped"

# the tables over the seeds whose runs finished
$PY benchmarks/fitted_report.py "$OUT/runs" --seeds $SEEDS --pairs $PAIRS --timeout-rc "$rc" \
  --seconds "$(( $(date +%s) - start ))" --options "$TRAIN_OPTS" --plot "$OUT/precision.png" > "$OUT/gpu_verdict.json"
cat "$OUT/gpu_verdict.json"

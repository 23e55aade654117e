#!/usr/bin/env bash
# RegDB with each paper's schedule: one model per trial (TRIALS, default 1..10), each scored on its own
# test split in both directions, then the mean over the trials as the papers report it.
#   examples/recipes/regdb.sh /data/RegDB supervised|otla|otla-unsup|experts|pclhd|mult|dcl [RUNS_DIR]
source "$(dirname "$0")/_recipe.sh"
ROOT=$1 METHOD=$2 RUNS=${3:-runs/regdb}
EXTRA=()
case $METHOD in
  otla|otla-unsup) EXTRA=(--set grl_ramp=0.191 --batches-per-epoch 129) ;;  # reference: GRL x5 (ramp 10,000/5 of 81 x 129 steps), 2 x 2,060 / 32 draws
  experts) EXTRA=(--set experts_stage1_epochs=50 --epochs 170 --lr 0.0009 --set 'milestones=[50, 70]' --batches-per-epoch 321) ;;  # the release's epoch: 5 x 2,060 images / 32
  pclhd|mult|dcl) EXTRA=(--set cluster_eps=0.3 --batches-per-epoch 100) ;;  # references: eps 0.3, 100 batches
esac
[ "${TINY:-0}" = 1 ] && EXTRA=()
runs=()
for trial in ${TRIALS:-1 2 3 4 5 6 7 8 9 10}; do
  TRIAL=$trial run_recipe regdb "$ROOT" "$METHOD" "$RUNS/$METHOD-trial$trial" "${EXTRA[@]}"
  runs+=("$RUNS/$METHOD-trial$trial/results.json")
done
python - "${runs[@]}" <<'PY'
import json, sys
results = [json.load(open(p)) for p in sys.argv[1:]]
mean = {d: {k: sum(r[d][k] for r in results) / len(results) for k in results[0][d]} for d in ("v2i", "i2v")}
print(json.dumps({"protocol": "regdb", "trials": len(results), **mean}, indent=2))
PY

#!/usr/bin/env bash
# For cron: score every checkpoint in a folder that has not been scored yet, once, appending one JSON
# line per checkpoint to scores.jsonl in that folder; exits non-zero when any scoring failed.
#   */30 * * * *  DATASET=sysu ROOT=/data/SYSU-MM01 /path/to/examples/score_new_checkpoints.sh /runs/otla
# Usage: score_new_checkpoints.sh FOLDER   (env: DATASET, ROOT, VITOOL; MODE=all|indoor for SYSU)
set -uo pipefail
VITOOL=${VITOOL:-vitool}
folder=${1:?usage: score_new_checkpoints.sh FOLDER}
: "${DATASET:?set DATASET (sysu, regdb, llcm)}" "${ROOT:?set ROOT (the dataset root)}"
scores="$folder/scores.jsonl"
touch "$scores"
failed=0
for ckpt in "$folder"/*.pt; do
  [ -e "$ckpt" ] || continue
  digest=$(sha256sum "$ckpt" | cut -d' ' -f1)
  grep -q "\"$digest\"" "$scores" && continue          # this exact file was scored before
  if out=$($VITOOL evaluate --checkpoint "$ckpt" --dataset "$DATASET" --root "$ROOT" --mode "${MODE:-all}" --json); then
    printf '{"checkpoint": "%s", "sha256": "%s", "scored_at": "%s", "result": %s}\n' \
      "$ckpt" "$digest" "$(date -u +%FT%TZ)" "$out" >> "$scores"
  else
    echo "score_new_checkpoints: failed on $ckpt" >&2
    failed=1
  fi
done
exit $failed

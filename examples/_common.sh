# Shared settings of the examples. TINY=1 shrinks everything to a CI-sized run (seconds, not minutes).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VITOOL=${VITOOL:-vitool}
WORK=${WORK:-example-work}
mkdir -p "$WORK"
if [ "${TINY:-0}" = 1 ]; then
  SYNTH=(--train-ids 8 --test-ids 4 --images 2)
  TRAIN=(--config "$REPO/configs/demo.toml" --epochs 1 --batches-per-epoch 2 --val-ids 0 --workers 0
         --set height=64 --set width=32 --set ids_per_batch=2 --set images_per_id=2)
  EXTRACT=(--backbone mobilenet_v2 --pretrained imagenet --height 64 --width 32)
  K=8
  CLUSTER=(--method kmeans --k 8)   # DBSCAN finds too few dense groups in 8 identities
else
  SYNTH=()
  TRAIN=(--config "$REPO/configs/demo.toml")
  EXTRACT=(--backbone mobilenet_v2 --pretrained imagenet)
  K=64
  CLUSTER=(--eps 0.5)
fi

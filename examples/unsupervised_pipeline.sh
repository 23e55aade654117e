#!/usr/bin/env bash
# Unsupervised VI-ReID as separate stages, each a file you can inspect:
#   synth -> extract-features -> cluster -> assign-labels (OT) -> train OTLA on those labels -> evaluate.
# Usage: examples/unsupervised_pipeline.sh            (WORK=dir to choose the folder, TINY=1 for a quick run)
source "$(dirname "$0")/_common.sh"

[ -d "$WORK/sysu" ] || $VITOOL synth "$WORK/sysu" --layout sysu "${SYNTH[@]}"
$VITOOL extract-features --dataset sysu --root "$WORK/sysu" --split train "${EXTRACT[@]}" -o "$WORK/train.h5" --overwrite
$VITOOL cluster "$WORK/train.h5" "${CLUSTER[@]}" -o "$WORK/clusters.h5" --overwrite   # per-modality pseudo labels
$VITOOL assign-labels "$WORK/train.h5" --labels "$WORK/clusters.h5" --method ot -o "$WORK/ot.h5" --overwrite
$VITOOL info "$WORK/ot.h5"
rm -rf "$WORK/run"
$VITOOL train "${TRAIN[@]}" --method otla --labels "$WORK/ot.h5" --root "$WORK/sysu" -o "$WORK/run"
$VITOOL evaluate "$WORK/run/test_features.h5" --mode indoor --json > "$WORK/indoor.json"
echo "all-search: $WORK/run/results.json, indoor: $WORK/indoor.json"

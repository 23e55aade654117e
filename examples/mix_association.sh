#!/usr/bin/env bash
# Mix stages of different papers: MULT's label transfer (paper 002) decides the visible classes that
# OTLA (paper 003) trains on, and a pseudo-label map shows what the association got wrong.
# Usage: examples/mix_association.sh                  (WORK=dir, TINY=1 as in the other examples)
source "$(dirname "$0")/_common.sh"

[ -d "$WORK/sysu" ] || $VITOOL synth "$WORK/sysu" --layout sysu "${SYNTH[@]}"
$VITOOL extract-features --dataset sysu --root "$WORK/sysu" --split train "${EXTRACT[@]}" -o "$WORK/train.h5" --overwrite
$VITOOL cluster "$WORK/train.h5" --method kmeans --k "$K" -o "$WORK/kmeans.h5" --overwrite
$VITOOL assign-labels "$WORK/train.h5" --labels "$WORK/kmeans.h5" --method mult -o "$WORK/mult.h5" --overwrite --json
$VITOOL show embedding "$WORK/train.h5" --labels "$WORK/mult.h5" -o "$WORK/mult-labels.png" --overwrite
rm -rf "$WORK/mix"
$VITOOL train "${TRAIN[@]}" --method otla --labels "$WORK/mult.h5" --root "$WORK/sysu" -o "$WORK/mix"

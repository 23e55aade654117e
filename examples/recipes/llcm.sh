#!/usr/bin/env bash
# LLCM with each paper's schedule; results.json holds IR->VIS (i2v) and VIS->IR (v2i, unswapped).
#   examples/recipes/llcm.sh /data/LLCM supervised|otla|otla-unsup|experts|pclhd|mult|dcl [RUNS_DIR]
source "$(dirname "$0")/_recipe.sh"
ROOT=$1 METHOD=$2 RUNS=${3:-runs/llcm}
EXTRA=()
case $METHOD in
  experts) EXTRA=(--set experts_stage1_epochs=80 --epochs 200) ;;  # the reference's llcm.sh: 80 HEL epochs, then 120
  pclhd|mult|dcl) EXTRA=(--set cluster_k1=25) ;;  # no LLCM config in either paper; DMDL's LLCM clustering
esac
[ "${TINY:-0}" = 1 ] && EXTRA=()
run_recipe llcm "$ROOT" "$METHOD" "$RUNS/$METHOD" "${EXTRA[@]}"
cat "$RUNS/$METHOD/results.json"

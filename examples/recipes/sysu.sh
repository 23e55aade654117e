#!/usr/bin/env bash
# SYSU-MM01 with each paper's schedule; results.json of the run holds all-search and indoor-search.
#   examples/recipes/sysu.sh /data/SYSU-MM01 supervised|otla|otla-unsup|experts|pclhd|mult|dcl [RUNS_DIR]
source "$(dirname "$0")/_recipe.sh"
ROOT=$1 METHOD=$2 RUNS=${3:-runs/sysu}
run_recipe sysu "$ROOT" "$METHOD" "$RUNS/$METHOD"
cat "$RUNS/$METHOD/results.json"

#!/usr/bin/env bash
# The paired verdict of docs/results.md: each label-efficient method against its no-association baseline
# over seeds 0-4, with matched schedules, on the default synthetic data (vitool synth, SYSU layout, seed 0),
# then `vitool compare` tables. Pairs run one after another, each over every seed, so a stopped script
# leaves whole pairs; it skips finished runs and resumes interrupted ones, so rerunning it continues.
#
# Wall time on 2 idle CPU cores, per seed: otla + visible 13 min, dcl + pclhd + mult 28 min, dcl + mult in
# MULT's own schedule 17 min, experts + HEL only (16 epochs) 30 min, supervised 8 epochs 6 min and 16
# epochs 13 min: about 9 hours for five seeds.
#
# Usage:  benchmarks/verdict.sh [RUNS_DIR] [PAIR ...]
#         PAIR: otla unsupervised mult experts supervised supervised16
#         SEEDS="0 1 2" DATA=data/sysu benchmarks/verdict.sh runs otla
set -euo pipefail
RUNS=${1:-runs}
shift || true
PAIRS=${*:-otla unsupervised mult experts supervised supervised16}
SEEDS=${SEEDS:-0 1 2 3 4}
DATA=${DATA:-data/sysu}
VITOOL=${VITOOL:-vitool}
cd "$(dirname "$0")/.."
mkdir -p "$RUNS"
[ -d "$DATA" ] || "$VITOOL" synth "$DATA" --layout sysu --seed 0

train() {  # train NAME SEED [train options...]: a run folder per (NAME, SEED), resumed or skipped when done
  local out=$RUNS/$1-s$2 seed=$2
  shift 2
  if [ -f "$out/results.json" ]; then return; fi
  if [ -f "$out/last.pt" ]; then  # the epoch lines go to NAME-sSEED.log beside the folder
    "$VITOOL" train --resume "$out" >/dev/null 2>>"$out.log"
  else
    "$VITOOL" train --root "$DATA" --seed "$seed" -o "$out" "$@" >/dev/null 2>>"$out.log"
  fi
  echo "$(date +%H:%M) $out done"
}

group() {  # group NAME: NAME=RUNS/NAME-s0,RUNS/NAME-s1,... over the seeds
  local runs=()
  for s in $SEEDS; do runs+=("$RUNS/$1-s$s"); done
  (IFS=,; echo "$1=${runs[*]}")
}

for pair in $PAIRS; do
  for s in $SEEDS; do
    case $pair in
      otla)
        train visible "$s" --config configs/demo.toml --method visible
        train otla "$s" --config configs/demo.toml --method otla ;;
      unsupervised)
        for m in dcl pclhd mult; do train "$m" "$s" --config configs/demo-unsupervised.toml --method "$m"; done ;;
      mult)  # MULT's released schedule, one over the run: its cross stage at a tenth of stage one's rate
        for m in dcl mult; do train "$m-onesched" "$s" --config configs/demo-mult.toml --method "$m"; done ;;
      experts)
        train hel16 "$s" --config configs/demo.toml --method experts --epochs 16 \
          --set experts_stage1_epochs=16 --set 'schedule_stages=[4]'
        train experts16 "$s" --config configs/demo.toml --method experts --epochs 16 ;;
      supervised) train supervised "$s" --config configs/demo.toml --method supervised ;;
      supervised16) train supervised16 "$s" --config configs/demo.toml --method supervised --epochs 16 ;;
      oracles | controls)  # calibration (c, d): each method's losses with the true / a shuffled association
        if [ "$pair" = oracles ]; then k=oracle v=true a=oracle; else k=shuffled v=true a=shuffled; fi
        train "otla-$k" "$s" --config configs/demo.toml --method otla --set "ot_$k=$v"
        train "pclhd-$k" "$s" --config configs/demo-unsupervised.toml --method pclhd --set "association=\"$a\""
        train "mult-$k" "$s" --config configs/demo-mult.toml --method mult --set "association=\"$a\""
        train "experts16-$k" "$s" --config configs/demo.toml --method experts --epochs 16 --set "experts_$k=$v" ;;
      *) echo "unknown pair '$pair': use otla, unsupervised, mult, experts, supervised, supervised16," \
        "oracles or controls" >&2
        exit 2 ;;
    esac
  done
done

upper() {  # the supervised upper bound, when its runs exist: paired only with visible-only, its same schedule
  local s
  for s in $SEEDS; do [ -f "$RUNS/$1-s$s/results.json" ] || return 0; done
  group "$1"
}

compare() {  # each pair's table on stdout and its picture as RUNS/verdict-PAIR.png (docs/img/ holds copies)
  "$VITOOL" compare "$@" --format markdown --plot "$RUNS/verdict-$pair.png" --overwrite
}

for pair in $PAIRS; do
  case $pair in
    otla) compare "$(group visible)" "$(group otla)" $(upper supervised) --baseline visible ;;
    unsupervised) compare "$(group dcl)" "$(group pclhd)" "$(group mult)" --baseline dcl ;;
    mult) compare "$(group dcl-onesched)" "$(group mult-onesched)" --baseline dcl-onesched ;;
    experts) compare "$(group hel16)" "$(group experts16)" --baseline hel16 ;;
    supervised) continue ;;  # in the otla table
    supervised16) compare "$(group supervised16)" ;;  # no baseline runs its schedule
    oracles | controls) continue ;;  # benchmarks/calibrate.py RUNS reads them with their baselines
  esac
  echo
done

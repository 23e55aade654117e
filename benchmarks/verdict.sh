#!/usr/bin/env bash
# The paired verdict of docs/results.md and the calibration runs of docs/synthetic.md: each label-efficient
# method against its no-association baseline over seeds 0-4, with matched schedules, on the default
# synthetic data (vitool synth, SYSU layout, seed 0), then `vitool compare` tables; `oracles` and
# `controls` are each method with the true and with a shuffled association (benchmarks/calibrate.py), and
# for OTLA also the per-image random one (otla-random) and its exposure-matched baseline, Table 2 row 2
# (visible-ld: the infrared images reach only the modality discriminator); `ablations` is OTLA's Table 2
# row 4 (otla-nopal: no PAL).
# The fitted pairs (fitted-otla, fitted-pclhd, fitted-mult, fitted-experts) start the association from a fitted
# model, as the released pipelines do: per seed, the baseline's own demo run above (visible-only, DCL, DCL in
# MULT's schedule, HEL only) is stage 1, and four rows start from it with `--init` and train the same
# association budget, BUDGET times the demo's association stage (OTLA 16 epochs, PCLHD and MULT 8, the
# experts 12): the baseline continued, the method, its oracle and its shuffled control, in
# RUNS/fitted-xBUDGET/ (the oracle only on the seeds in ORACLE_SEEDS, all by default). MULT's rows continue
# at its cross stage's rate (a tenth), as its released cross stage.
# Pairs run one after another, each over every seed, so a stopped script leaves whole pairs; it skips
# finished runs and resumes interrupted ones, so rerunning it continues. Every run trains the demo budget,
# 16 epochs x 30 batches (about 11-14 minutes each on 2 idle CPU cores).
#
# Usage:  benchmarks/verdict.sh [RUNS_DIR] [PAIR ...]
#         PAIR: supervised otla unsupervised mult experts oracles controls ablations
#         SEEDS="0 1 2" DATA=data/sysu benchmarks/verdict.sh runs otla
#         METHODS="otla experts" benchmarks/verdict.sh runs oracles controls   (those methods' controls only)
#         TRAIN_OPTS="--set workers=0" OMP_NUM_THREADS=1 benchmarks/verdict.sh runs otla   (as docs/results.md ran it)
#         BUDGET=2 SEEDS=0 benchmarks/verdict.sh runs fitted-otla fitted-experts
#         BUDGET=2 ORACLE_SEEDS=0 benchmarks/verdict.sh runs fitted-pclhd   (the oracle's room on seed 0 only)
set -euo pipefail
RUNS=${1:-runs}
shift || true
PAIRS=${*:-supervised otla unsupervised mult experts}
BUDGET=${BUDGET:-1}
F=fitted-x$BUDGET
SEEDS=${SEEDS:-0 1 2 3 4}
DATA=${DATA:-data/sysu}
VITOOL=${VITOOL:-vitool}
cd "$(dirname "$0")/.."
mkdir -p "$RUNS"
[ -d "$DATA" ] || "$VITOOL" synth "$DATA" --layout sysu --seed 0

train() {  # train NAME SEED [train options...]: a run folder per (NAME, SEED), resumed or skipped when done
  local out=$RUNS/$1-s$2 seed=$2
  shift 2
  mkdir -p "$(dirname "$out")"
  if [ -f "$out/results.json" ]; then return; fi
  if [ -f "$out/last.pt" ]; then  # the epoch lines go to NAME-sSEED.log beside the folder
    "$VITOOL" train --resume "$out" >/dev/null 2>>"$out.log"
  else
    # shellcheck disable=SC2086  # TRAIN_OPTS: extra train options, split on spaces
    "$VITOOL" train --root "$DATA" --seed "$seed" -o "$out" "$@" ${TRAIN_OPTS:-} >/dev/null 2>>"$out.log"
  fi
  echo "$(date +%H:%M) $out done"
}

group() {  # group NAME [LABEL]: LABEL=RUNS/NAME-s0,RUNS/NAME-s1,... over the seeds (LABEL defaults to NAME)
  local runs=()
  for s in $SEEDS; do runs+=("$RUNS/$1-s$s"); done
  (IFS=,; echo "${2:-$1}=${runs[*]}")
}

stage1() {  # stage1 METHOD SEED: train the method's stage 1 (its baseline's demo run) and set the fitted rows'
  # options: fit (every row's), continued (the baseline continued), own (the method's), base, m, oracle, shuffled
  m=$1
  case $m in
    otla)
      base=visible oracle=ot_oracle=true shuffled=ot_shuffled=true
      train visible "$2" --config configs/demo.toml --method visible
      fit=(--config configs/demo.toml --init "$RUNS/visible-s$2" --epochs $((16 * BUDGET)))
      continued=(--method visible) own=(--method otla) ;;
    otla-usvi)  # OTLA's unsupervised column: visible labels from `vitool cluster` on an unsupervised model's
      # features (the paper clusters an unsupervised SpCL model's; here PCLHD's stage 1, DCL: ImageNet
      # features alone cluster the visible images at ARI 0.07 on this data, DCL's at 0.27)
      base=visible-usvi oracle=ot_oracle=true shuffled=ot_shuffled=true
      local features=$RUNS/usvi-features-s$2.h5 labels=$RUNS/usvi-clusters-s$2.h5
      train dcl "$2" --config configs/demo-unsupervised.toml --method dcl
      [ -f "$features" ] || "$VITOOL" extract-features --dataset sysu --root "$DATA" --split train \
        --checkpoint "$RUNS/dcl-s$2/last.pt" -o "$features" >/dev/null
      [ -f "$labels" ] || "$VITOOL" cluster "$features" -o "$labels" >/dev/null
      train visible-usvi "$2" --config configs/demo.toml --method visible --labels "$labels"
      fit=(--config configs/demo.toml --labels "$labels" --init "$RUNS/visible-usvi-s$2" --epochs $((16 * BUDGET)))
      continued=(--method visible) own=(--method otla) ;;
    pclhd | mult)
      oracle='association="oracle"' shuffled='association="shuffled"'
      if [ "$m" = pclhd ]; then
        base=dcl fit=(--config configs/demo-unsupervised.toml)
      else
        base=dcl-onesched fit=(--config configs/demo-mult.toml)
      fi
      train "$base" "$2" "${fit[@]}" --method dcl
      fit+=(--init "$RUNS/$base-s$2" --epochs $((8 * BUDGET)) --set 'schedule_stages=[]')
      if [ "$m" = mult ]; then  # MULT's rows continue at its cross stage's rate, a tenth of stage one's
        fit+=(--set strong_augmentation_epochs=0 --set lr=0.00035 --set 'milestones=[]' --set warmup_epochs=0)
      fi
      continued=(--method dcl) own=(--method "$m" --set dcl_epochs=0) ;;
    experts)
      base=hel oracle=experts_oracle=true shuffled=experts_shuffled=true
      train hel "$2" --config configs/demo.toml --method experts \
        --set experts_stage1_epochs=16 --set 'schedule_stages=[4]'
      fit=(--config configs/demo.toml --method experts --init "$RUNS/hel-s$2" --epochs $((12 * BUDGET))
        --set 'schedule_stages=[]')
      continued=(--set experts_stage1_epochs=$((12 * BUDGET))) own=(--set experts_stage1_epochs=0) ;;
  esac
}

for pair in $PAIRS; do
  for s in $SEEDS; do
    case $pair in
      otla)
        train visible "$s" --config configs/demo.toml --method visible
        train otla "$s" --config configs/demo.toml --method otla ;;
      unsupervised)  # PCLHD's released schedule (MULT's own is the mult pair)
        for m in dcl pclhd; do train "$m" "$s" --config configs/demo-unsupervised.toml --method "$m"; done ;;
      mult)  # MULT's released schedule, one over the run: its cross stage at a tenth of stage one's rate
        for m in dcl mult; do train "$m-onesched" "$s" --config configs/demo-mult.toml --method "$m"; done ;;
      experts)
        train hel "$s" --config configs/demo.toml --method experts \
          --set experts_stage1_epochs=16 --set 'schedule_stages=[4]'
        train experts "$s" --config configs/demo.toml --method experts ;;
      supervised) train supervised "$s" --config configs/demo.toml --method supervised ;;
      oracles | controls)  # calibration (c, d): each method's losses with the true / a shuffled association
        if [ "$pair" = oracles ]; then k=oracle v=true a=oracle; else k=shuffled v=true a=shuffled; fi
        for m in ${METHODS:-otla pclhd mult experts}; do
          case $m in
            otla) train "otla-$k" "$s" --config configs/demo.toml --method otla --set "ot_$k=$v"
              if [ "$pair" = controls ]; then
                train otla-random "$s" --config configs/demo.toml --method otla --set ot_random=true
                train visible-ld "$s" --config configs/demo.toml --method otla --set ot_random=true \
                  --set otla_ir_loss=false --set otla_pal=false
              fi ;;
            pclhd) train "pclhd-$k" "$s" --config configs/demo-unsupervised.toml --method pclhd \
              --set "association=\"$a\"" ;;
            mult) train "mult-$k" "$s" --config configs/demo-mult.toml --method mult --set "association=\"$a\"" ;;
            experts) train "experts-$k" "$s" --config configs/demo.toml --method experts --set "experts_$k=$v" ;;
          esac
        done ;;
      ablations) train otla-nopal "$s" --config configs/demo.toml --method otla --set otla_pal=false ;;
      fitted-otla | fitted-pclhd | fitted-mult | fitted-experts)
        stage1 "${pair#fitted-}" "$s"
        train "$F/$base" "$s" "${fit[@]}" "${continued[@]}"
        train "$F/$m" "$s" "${fit[@]}" "${own[@]}"
        if [[ " ${ORACLE_SEEDS-$SEEDS} " == *" $s "* ]]; then
          train "$F/$m-oracle" "$s" "${fit[@]}" "${own[@]}" --set "$oracle"
        fi
        train "$F/$m-shuffled" "$s" "${fit[@]}" "${own[@]}" --set "$shuffled" ;;
      fitted-ablations)  # each paper's main rows from the same stage 1 (docs/training.md names the keys)
        for m in ${METHODS:-otla otla-usvi pclhd mult experts}; do
          stage1 "$m" "$s"
          case $m in
            otla | otla-usvi)
              if [ "$m" = otla-usvi ]; then  # rows 1 and 6 (the semi-supervised ones are the fitted-otla pair's)
                train "$F/$base" "$s" "${fit[@]}" "${continued[@]}"
                train "$F/$m" "$s" "${fit[@]}" "${own[@]}"
              fi
              train "$F/$m-row2" "$s" "${fit[@]}" "${own[@]}" --set otla_ir_loss=false --set ot_random=true \
                --set otla_pal=false
              train "$F/$m-row3" "$s" "${fit[@]}" "${own[@]}" --set otla_ir_loss=false --set ot_random=true \
                --set otla_discriminator=false
              train "$F/$m-row4" "$s" "${fit[@]}" "${own[@]}" --set otla_pal=false
              train "$F/$m-row5" "$s" "${fit[@]}" "${own[@]}" --set otla_discriminator=false ;;
            pclhd)
              train "$F/pclhd-baseline" "$s" "${fit[@]}" "${own[@]}" --set pclhd_hpcl=false --set pclhd_dpcl=false
              train "$F/pclhd-dpcl" "$s" "${fit[@]}" "${own[@]}" --set pclhd_hpcl=false
              train "$F/pclhd-hpcl" "$s" "${fit[@]}" "${own[@]}" --set pclhd_dpcl=false ;;
            mult) train "$F/mult-nooclr" "$s" "${fit[@]}" "${own[@]}" --set mult_oclr=false ;;
            experts)
              train "$F/experts-nocre" "$s" "${fit[@]}" "${own[@]}" --set experts_cre=false --set experts_clae=false
              train "$F/experts-noclae" "$s" "${fit[@]}" "${own[@]}" --set experts_clae=false ;;
          esac
        done ;;
      *) echo "unknown pair '$pair': use supervised, otla, unsupervised, mult, experts, oracles, controls, ablations, fitted-METHOD or fitted-ablations" >&2
        exit 2 ;;
    esac
  done
done

upper() {  # upper NAME: its group when every seed's run finished (the supervised bound, a fitted oracle)
  local s
  for s in $SEEDS; do [ -f "$RUNS/$1-s$s/results.json" ] || return 0; done
  group "$1" "${2:-$1}"
}

compare() {  # each pair's table on stdout and its picture as RUNS/verdict-PAIR[-SUFFIX].png (docs/img/ holds copies)
  local suffix=$1
  shift
  "$VITOOL" compare "$@" --format markdown --plot "$RUNS/verdict-$pair$suffix.png" --overwrite
}

fitted() {  # fitted ROW BASELINE METHOD: the rows against the baseline continued, then the method against its control
  local row
  compare "" $(for row in "$1" "$2"; do group "$F/$row" "$row"; done) $(upper "$F/$2-oracle" "$2-oracle") \
    "$(group "$F/$2-shuffled" "$2-shuffled")" --baseline "$1"
  echo
  compare -control "$(group "$F/$2-shuffled" "$2-shuffled")" "$(group "$F/$2" "$2")" --baseline "$2-shuffled"
}

for pair in $PAIRS; do
  case $pair in
    otla) compare "" "$(group visible)" "$(group otla)" $(upper supervised) --baseline visible ;;
    unsupervised) compare "" "$(group dcl)" "$(group pclhd)" --baseline dcl ;;
    mult) compare "" "$(group dcl-onesched)" "$(group mult-onesched)" --baseline dcl-onesched ;;
    experts) compare "" "$(group hel)" "$(group experts)" --baseline hel ;;
    supervised) continue ;;  # in the otla table
    oracles | controls | ablations) continue ;;  # benchmarks/calibrate.py RUNS reads them with their baselines
    fitted-otla) fitted visible otla ;;
    fitted-pclhd) fitted dcl pclhd ;;
    fitted-mult) fitted dcl-onesched mult ;;
    fitted-experts) fitted hel experts ;;
    fitted-ablations) continue ;;  # docs/results.md tabulates the rows beside the papers'
  esac
  echo
done

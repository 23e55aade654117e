# Shared by the dataset recipes: one function that trains one method with its paper's configuration.
# GPUS=N (N > 1) starts the same command under torchrun (DDP; the global batch stays the paper's).
# TINY=1 shrinks the run to a CPU smoke test (MobileNetV2 at 64x32, 2 epochs of 2 batches): the test
# suite runs every recipe that way on synthetic data in the official layouts.
set -euo pipefail
CONFIGS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../configs" && pwd)
GPUS=${GPUS:-1}
SMALL=()
if [ "${TINY:-0}" = 1 ]; then
  SMALL=(--backbone mobilenet_v2 --epochs 2 --batches-per-epoch 2 --device cpu --workers 0
         --set height=64 --set width=32 --set ids_per_batch=2 --set images_per_id=2 --set val_ids=0)
fi

vitool_train() {
  if [ "$GPUS" -gt 1 ]; then
    torchrun --standalone --nproc_per_node "$GPUS" -m vitool train "$@"
  else
    vitool train "$@"
  fi
}

# run_recipe DATASET ROOT METHOD OUT [extra train options...]; TRIAL (default 1) picks the RegDB trial
#   METHOD: supervised (AGW) | otla (semi-supervised) | otla-unsup (needs LABELS=visible labels file) | experts
#           | pclhd | mult (unsupervised) | dcl (their no-association baseline, with PCLHD's schedule)
run_recipe() {
  local dataset=$1 root=$2 method=$3 out=$4
  shift 4
  local small=("${SMALL[@]}")
  if [ "${TINY:-0}" = 1 ]; then  # a method's own keys only where it reads them (--set of another's: an error)
    case $method in
      experts) small+=(--set experts_stage1_epochs=1) ;;
      pclhd|mult|dcl) small+=(--set cluster_k1=4 --set cluster_k2=2 --set cluster_min_samples=2 --set cluster_eps=0.7)
                      [ "$method" = dcl ] || small+=(--set dcl_epochs=1) ;;  # dcl has no second stage
    esac
  fi
  set -- --trial "${TRIAL:-1}" "$@"
  case $method in
    supervised) vitool_train --config "$CONFIGS/agw.toml" --dataset "$dataset" --root "$root" -o "$out" "$@" "${small[@]}" ;;
    otla) vitool_train --config "$CONFIGS/otla.toml" --dataset "$dataset" --root "$root" -o "$out" "$@" "${small[@]}" ;;
    otla-unsup)
      if [ -z "${LABELS:-}" ]; then
        echo "otla-unsup: set LABELS to a visible labels file of this training split (e.g. vitool cluster output)" >&2
        return 1
      fi
      vitool_train --config "$CONFIGS/otla.toml" --dataset "$dataset" --root "$root" --labels "$LABELS" -o "$out" \
        "$@" "${small[@]}" ;;
    experts)
      mkdir -p "$(dirname "$out")"
      vitool weak-labels --dataset "$dataset" --root "$root" --trial "${TRIAL:-1}" -o "$out.weak.h5" --overwrite
      vitool_train --config "$CONFIGS/experts.toml" --dataset "$dataset" --root "$root" --labels "$out.weak.h5" \
        -o "$out" "$@" "${small[@]}" ;;
    pclhd|mult) vitool_train --config "$CONFIGS/$method.toml" --dataset "$dataset" --root "$root" -o "$out" "$@" "${small[@]}" ;;
    dcl) vitool_train --config "$CONFIGS/pclhd.toml" --method dcl --dataset "$dataset" --root "$root" -o "$out" "$@" \
      "${small[@]}" ;;
    *) echo "unknown method '$method': use supervised, otla, otla-unsup, experts, pclhd, mult or dcl" >&2; return 2 ;;
  esac
}

#!/usr/bin/env bash
# Checks that `pip install .` keeps a PyTorch the user already has (a GPU user's CUDA build): a fresh venv
# gets an older supported torch first, then vitool, and the torch must be the same afterwards.
#
# Usage:  benchmarks/install_beside_torch.sh [TORCH_SPEC [TORCHVISION_SPEC]]
#   default: the torch 2.13.0 CPU wheel in /opt/wheels where this machine has it, else torch==2.9.1
#   (the oldest vitool supports, pyproject.toml), with the torchvision built for it.
set -euo pipefail
cd "$(dirname "$0")/.."
wheel=$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -1 || true)
torch_spec=${1:-${wheel:-torch==2.9.1}}
vision_spec=${2:-$([ -n "$wheel" ] && [ -z "${1:-}" ] && echo torchvision==0.28.0 || echo torchvision==0.24.1)}
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "$torch_spec"
"$venv/bin/python" -m pip install --quiet --no-deps "$vision_spec"
before=$("$venv/bin/python" -m pip show torch torchvision | grep -E '^(Name|Version)' | paste -sd' ')
"$venv/bin/python" -m pip install --quiet .
after=$("$venv/bin/python" -m pip show torch torchvision | grep -E '^(Name|Version)' | paste -sd' ')
echo "before: $before"
echo "after:  $after"
rm -rf "$(dirname "$venv")"
if [ "$before" != "$after" ]; then
  echo "FAIL: installing vitool changed the torch that was there" >&2
  exit 1
fi
echo "ok: vitool installed beside the existing torch"

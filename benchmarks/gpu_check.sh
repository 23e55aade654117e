#!/usr/bin/env bash
# The one GPU check (at most 8 minutes on one GPU; the timeouts sum to 480 s): for a machine with a CUDA
# PyTorch already installed and no internet. Runs the CUDA tests (every method a few steps at ResNet-50
# 288x144 with AMP, exact resume on the GPU, a CPU run resumed on the GPU, channels_last, a two-process
# NCCL run where two GPUs are visible), then measures ResNet-50 288x144 training images/s with AMP off,
# fp16 and bf16, extraction images/s, the real Engine's epochs of every method with channels_last off and
# on (images/s, data-wait share, labels-stage seconds, peak memory), and the seconds of clustering and
# MULT's transfer at SYSU-MM01 size on the GPU; writes one JSON report, $OUT/gpu_check.json (OUT defaults
# to .).
#
# vitool itself is used from src/ (no install). Packages the machine lacks (POT, faiss, typer, ...) can
# come as wheel files in .whl/ beside this repository (see docs/benchmarks.md); they are installed with
# --no-deps into a private folder, so the machine's own torch is never touched.
#
# Usage:  benchmarks/gpu_check.sh            (from anywhere; OUT=/some/dir to choose where the report goes)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/vitool-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/vitool-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
$PY - <<'PY' > "$OUT/environment.json"
import importlib, json, torch
mods = ["numpy", "scipy", "sklearn", "h5py", "typer", "rich", "ot", "faiss", "matplotlib", "PIL", "pytest"]
found = {}
for m in mods:
    try:
        found[m] = getattr(importlib.import_module(m), "__version__", "?")
    except Exception as exc:  # noqa: BLE001
        found[m] = f"missing ({type(exc).__name__})"
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpu_visible": torch.cuda.is_available(),
                  "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "packages": found}))
PY
cat "$OUT/environment.json"
start=$(date +%s)
timeout 210 $PY -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py -rs --junitxml="$OUT/cuda_tests.xml" \
  2>&1 | tee "$OUT/cuda_tests.log"
tests_rc=${PIPESTATUS[0]}
timeout 90 $PY benchmarks/gpu_speed.py --steps 20 > "$OUT/speed.json" 2> "$OUT/speed.log"
speed_rc=$?
timeout 120 $PY benchmarks/gpu_speed.py --engine --steps 10 > "$OUT/engine.json" 2> "$OUT/engine.log"
engine_rc=$?
timeout 60 $PY benchmarks/gpu_speed.py --stages > "$OUT/stages.json" 2> "$OUT/stages.log"
stages_rc=$?
$PY - "$OUT" "$tests_rc" "$speed_rc" "$(( $(date +%s) - start ))" "$stages_rc" "$engine_rc" <<'PY'
import json, sys, re
from pathlib import Path
out, tests_rc, speed_rc, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
stages_rc, engine_rc = int(sys.argv[5]), int(sys.argv[6])
log = (out / "cuda_tests.log").read_text()
summary = [line for line in log.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)]
speed = (out / "speed.json").read_text().strip()
report = {
    "environment": json.loads((out / "environment.json").read_text()),
    "cuda_tests": {"exit_code": tests_rc, "summary": summary[-1] if summary else None},
    "speed": json.loads(speed) if speed_rc == 0 and speed else {"exit_code": speed_rc},
    "engine": json.loads((out / "engine.json").read_text()) if engine_rc == 0 else {"exit_code": engine_rc},
    "stages": json.loads((out / "stages.json").read_text()) if stages_rc == 0 else {"exit_code": stages_rc},
    "seconds": seconds,
}
(out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report, indent=2))
PY

"""The prepared GPU verdict (benchmarks/gpu_verdict.sh) runs end to end on the CPU at a tiny size."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


TINY = "--batches-per-epoch 1 --set height=32 --set width=16 --set val_ids=0"
CLUSTERS = (
    " --set ids_per_batch=2 --set images_per_id=2 --set cluster_k1=4 --set cluster_k2=2 --set cluster_min_samples=2"
)


def gpu_verdict(out: Path, pairs: str, seeds: str, extra: str) -> dict:
    """benchmarks/gpu_verdict.sh on the CPU: one epoch of one batch per run on a 24-identity dataset."""
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable, PAIRS=pairs, SEEDS=seeds, EPOCHS="1", SCALE="0")
    env |= dict(PARALLEL="2", DEVICE="cpu", EXTRA=extra, SYNTH="--train-ids 24 --test-ids 8 --images 2")
    res = subprocess.run(["bash", "benchmarks/gpu_verdict.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "gpu_verdict.json").read_text())


@pytest.mark.slow  # ten one-batch runs in fresh interpreters
def test_the_gpu_verdict_runs_its_pairs_and_reports_them(tmp_path):
    report = gpu_verdict(tmp_path / "out", "fitted-experts", "0 1", TINY)
    experts = report["pairs"]["fitted-experts"]
    assert experts["seeds_finished"] == [0, 1] and not report["stopped_by_timeout"]
    versus = experts["versus_baseline"]
    assert versus["baseline"] == "hel"
    assert set(versus["groups"]) == {"hel", "experts", "experts-oracle", "experts-shuffled"}
    assert set(experts["association_precision"]["experts"]) == {"0", "1"} and experts["sysu_mm01_precision"][0] > 90
    assert (tmp_path / "out" / "precision.png").stat().st_size > 10_000
    runs = tmp_path / "out" / "runs" / "fitted-x1"
    first = json.loads((runs / "experts-s0" / "log.jsonl").read_text().splitlines()[0])
    assert first["init"]["checkpoint"] == str(tmp_path / "out" / "runs" / "hel-s0" / "last.pt")
    assert "expert_visible.weight" in first["init"]["method_heads"]


@pytest.mark.slow  # ten one-batch runs in fresh interpreters
def test_the_gpu_verdict_continues_pclhd_and_mult_from_their_dcl_runs(tmp_path):
    report = gpu_verdict(tmp_path / "out", "fitted-pclhd fitted-mult", "0", TINY + " --set cluster_eps=0.7" + CLUSTERS)
    for pair, method in (("fitted-pclhd", "pclhd"), ("fitted-mult", "mult")):
        assert report["pairs"][pair]["seeds_finished"] == [0], pair
        assert len(report["pairs"][pair]["association_precision"][method]["0"]) == 1
    runs = tmp_path / "out" / "runs" / "fitted-x1"
    config = (runs / "mult-s0" / "config.toml").read_text()
    assert "dcl_epochs = 0" in config and "lr = 0.00035" in config  # MULT continues at its cross stage's rate

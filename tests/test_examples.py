"""The shell scripts in examples/ run end to end on tiny synthetic data (TINY=1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(script: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the venv's vitool
    full_env = {**os.environ, "PATH": path, "TINY": "1", "WORK": str(tmp_path / "work"), **env}
    return subprocess.run(
        ["bash", str(EXAMPLES / script), *args], capture_output=True, text=True, env=full_env, timeout=900
    )


@pytest.mark.slow  # each runs a dozen commands in fresh interpreters; the stages themselves are tested in process
@pytest.mark.parametrize("script", ["unsupervised_pipeline.sh", "mix_association.sh"])
def test_pipeline_examples_run(script, tmp_path):
    res = run(script, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = tmp_path / "work" / ("run" if script.startswith("unsup") else "mix")
    assert json.loads((run_dir / "results.json").read_text())["all"]["mAP"] > 0


def test_cron_example_scores_each_checkpoint_once_and_fails_loudly(tmp_path, synth_root):
    from vitool.models import build_model
    from vitool.models.checkpoint import save_checkpoint

    folder = tmp_path / "ckpts"
    folder.mkdir()
    model = build_model(backbone="mobilenet_v2", pretrained="none", height=64, width=32)
    save_checkpoint(folder / "a.pt", model, {"epoch": 0})
    env = {"DATASET": "sysu", "ROOT": str(synth_root["sysu"])}
    assert run("score_new_checkpoints.sh", tmp_path, str(folder), **env).returncode == 0
    assert run("score_new_checkpoints.sh", tmp_path, str(folder), **env).returncode == 0
    lines = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["result"]["mAP"] >= 0  # scored once, not twice
    (folder / "broken.pt").write_bytes(b"not a checkpoint")
    res = run("score_new_checkpoints.sh", tmp_path, str(folder), **env)
    assert res.returncode == 1 and "broken.pt" in res.stderr


@pytest.mark.parametrize(
    ("recipe", "method"),
    [
        ("sysu.sh", "experts"),
        ("regdb.sh", "otla"),
        ("llcm.sh", "supervised"),
        ("regdb.sh", "pclhd"),
        ("llcm.sh", "mult"),
        pytest.param("sysu.sh", "dcl", marks=pytest.mark.slow),
    ],
)
def test_recipes_run_at_smoke_size(recipe, method, tmp_path, synth_root):
    """The GPU recipes' commands are valid: each runs end to end with TINY=1 on the official layouts."""
    dataset = recipe.removesuffix(".sh")
    res = run(f"recipes/{recipe}", tmp_path, str(synth_root[dataset]), method, str(tmp_path / "runs"), TRIALS="1")
    assert res.returncode == 0, res.stderr[-3000:]
    name = f"{method}-trial1" if dataset == "regdb" else method
    results = json.loads((tmp_path / "runs" / name / "results.json").read_text())
    assert results["protocol"] == dataset and f'"protocol": "{dataset}"' in res.stdout
    if dataset == "regdb":  # the mean over the trials run is printed last
        assert '"trials": 1' in res.stdout
    log = [json.loads(line) for line in (tmp_path / "runs" / name / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and (method != "experts" or log[1]["stage"] == 2)

"""benchmarks/otla_label_diagnostics.py: where OTLA's infrared labels can come from, against known answers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from vitool.engine.trainer import Engine

from .conftest import identity_features, tiny

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "otla_label_diagnostics.py"
spec = importlib.util.spec_from_file_location("otla_label_diagnostics", SCRIPT)
diagnostics = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diagnostics)


def test_the_nearest_visible_centre_reads_the_modality_gap():
    """Infrared features on their own person's visible centre are all right; moved onto the next person's, none."""
    feats, pid, modality = identity_features(ids=12, noise=0.05, gap=0.0)
    vis, ir = modality == 0, modality == 1
    assert diagnostics.nearest_centre_accuracy(feats[vis], pid[vis], feats[ir], pid[ir]) == 100
    centres = np.stack([feats[vis & (pid == p)].mean(0) for p in range(12)])
    moved = centres[(pid[ir] + 1) % 12]
    assert diagnostics.nearest_centre_accuracy(feats[vis], pid[vis], moved, pid[ir]) == 0


def test_the_script_scores_a_trained_otla_checkpoint(synth_root, tmp_path):
    Engine(tiny(synth_root["sysu"], method="otla", epochs=1), tmp_path / "run", log=lambda _: None).run()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "run" / "last.pt")], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    keys = ["visible_argmax_accuracy", "infrared_argmax_accuracy", "infrared_nearest_visible_centre"]
    keys += ["infrared_sinkhorn_accuracy_eval_bn", "infrared_sinkhorn_accuracy_batch_bn"]
    assert all(0 <= report[k] <= 100 for k in keys)

"""benchmarks/mult_reach.py reads a MULT checkpoint's labels as the run itself scored them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vitool.engine.trainer import Engine

from .conftest import tiny
from .test_unsupervised import TINY_CLUSTERS

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "mult_reach.py"


def test_the_space_the_last_epoch_trained_in_scores_what_the_run_logged(synth_root, tmp_path):
    Engine(tiny(synth_root["sysu"], method="mult", **TINY_CLUSTERS), tmp_path / "run", log=lambda _: None).run()
    last = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()][-1]
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    res = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "run" / "last.pt")], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    space = json.loads(res.stdout)[last["space"]]
    assert space["cross_precision"] == last["cross_precision"] and space["cross_reachable"] == last["cross_reachable"]
    assert space["cross_precision"] <= space["cross_reachable"]

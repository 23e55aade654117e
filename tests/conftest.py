"""Shared fixtures: tiny synthetic datasets in the three official layouts, generated once per session."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import numpy as np
import pytest

from vitool.data.datasets import load_split
from vitool.data.synth import SynthConfig, generate
from vitool.engine.config import load_config
from vitool.io import FeatureSet


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("synth")
    roots = {}
    for layout in ("sysu", "regdb", "llcm"):
        roots[layout] = base / layout
        generate(roots[layout], SynthConfig(layout=layout, train_ids=6, test_ids=5, images=2, seed=1))
    return roots


def run_cli(*args: str, cwd: Path | None = None, isolated: bool = False) -> subprocess.CompletedProcess:
    """``vitool ARGS``: its exit code, stdout and stderr. It runs in this process (torch is imported once
    for the whole suite, not once per call) through the same ``main()`` the console script calls; with
    ``isolated`` in a fresh interpreter, for tests where the process boundary is the point."""
    argv = [str(a) for a in args]
    if isolated:
        return subprocess.run([sys.executable, "-m", "vitool", *argv], capture_output=True, text=True, cwd=cwd)
    from vitool.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, code = sys.argv, os.getcwd(), 0
    try:
        sys.argv = ["vitool", *argv]
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("default")  # a warning goes to stderr as a process would print it
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: err.write(
                warnings.formatwarning(message, category, filename, lineno, line)
            )
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Exception:  # what a separate process would print before exiting 1
                traceback.print_exc()
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    if code == 130:  # main() turned a Ctrl-C into exit 130: stop the test run as the user asked
        raise KeyboardInterrupt
    return subprocess.CompletedProcess(["vitool", *argv], code, out.getvalue(), err.getvalue())


def random_featureset(n_vis: int = 40, n_ir: int = 30, dim: int = 8, n_ids: int = 6, seed: int = 0) -> FeatureSet:
    rng = np.random.default_rng(seed)
    n = n_vis + n_ir
    pid = rng.integers(0, n_ids, n)
    modality = np.r_[np.zeros(n_vis), np.ones(n_ir)].astype(np.uint8)
    cam = np.where(modality == 0, rng.choice([1, 2, 4, 5], n), rng.choice([3, 6], n))
    paths = np.array(
        [f"cam{c}/{p:04d}/{i:04d}.jpg" for i, (c, p) in enumerate(zip(cam, pid, strict=True))], dtype=object
    )
    return FeatureSet(
        features=rng.normal(size=(n, dim)).astype(np.float32),
        path=paths,
        pid=pid.astype(np.int64),
        cam=cam.astype(np.int64),
        modality=modality,
    )


def assign_cli(features: Path, labels: Path, method: str, out: Path) -> subprocess.CompletedProcess:
    """`vitool assign-labels FEATURES --labels LABELS --method METHOD -o OUT --json`."""
    return run_cli("assign-labels", features, "--labels", labels, "--method", method, "-o", out, "--json")


def tiny(root, **kw):
    base = dict(
        dataset="sysu",
        root=str(root),
        backbone="mobilenet_v2",
        height=64,
        width=32,
        epochs=2,
        ids_per_batch=2,
        images_per_id=2,
        batches_per_epoch=2,
        optimizer="adam",
        lr=3.5e-3,
        warmup_epochs=1,
        milestones=[],
        val_ids=2,
        seed=3,
        workers=0,
    )
    base.update(kw)
    return load_config(None, base)


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """A command that failed as vitool promises: exit 1, nothing on stdout, one line on stderr holding
    each of ``needles``; returns that line."""
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    assert res.stdout == ""
    lines = res.stderr.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("vitool: error: "), res.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def identity_features(ids=12, per_vis=30, per_ir=20, noise=0.25, gap=0.8, dim=32, seed=0):
    """Well-separated identities; the infrared half is shifted by a common modality offset."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    shift = gap * rng.normal(size=dim)
    pid = np.r_[np.repeat(np.arange(ids), per_vis), np.repeat(np.arange(ids), per_ir)]
    modality = np.r_[np.zeros(ids * per_vis), np.ones(ids * per_ir)].astype(np.uint8)
    feats = centres[pid] + noise * rng.normal(size=(len(pid), dim)) + np.where(modality[:, None] == 1, shift, 0)
    return feats.astype(np.float32), pid, modality


def featureset_of(dataset, root, trial=1, seed=0):
    samples = load_split(dataset, root, "test", trial)
    rng = np.random.default_rng(seed)
    return FeatureSet(
        features=rng.normal(size=(len(samples), 16)).astype(np.float32),
        path=np.array([s.path for s in samples], dtype=object),
        pid=np.array([s.pid for s in samples]),
        cam=np.array([s.cam for s in samples]),
        modality=np.array([s.modality for s in samples], dtype=np.uint8),
    )


class Payload:
    """Unpickling this runs a shell command that creates ``marker``: the classic malicious checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def make_run(folder, seed, rank1, mAP, accuracy=None, dataset="sysu", protocol="sysu", config=True):
    folder.mkdir(parents=True)
    scores = {"rank1": rank1, "rank5": rank1 + 10, "rank10": 80.0, "rank20": 90.0, "mAP": mAP, "mINP": 5.0}
    names = ("all", "indoor") if protocol == "sysu" else ("v2i", "i2v")
    (folder / "results.json").write_text(json.dumps({"protocol": protocol, **{n: scores for n in names}}))
    if config:
        (folder / "config.toml").write_text(f'dataset = "{dataset}"\nseed = {seed}\n')
    if accuracy is not None:
        records = [
            {"epoch": 0, "loss": 3.0, "ir_label_accuracy": 1.0},
            {"epoch": 1, "loss": 2.0, "lr": 0.1, "ir_label_accuracy": accuracy, "labels_from": "truth"},
        ]
        (folder / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return folder

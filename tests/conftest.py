"""Shared fixtures: tiny synthetic datasets in the three official layouts, generated once per session."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

from vitool.data.synth import SynthConfig, generate
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
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
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

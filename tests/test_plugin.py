"""A method from another package: examples/method-plugin, installed into a temporary folder, plugs in
through the `vitool.methods` entry point and trains, with its own option, without any change to vitool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import one_line_error

PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "method-plugin"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    target, source = tmp_path_factory.mktemp("plugin"), tmp_path_factory.mktemp("source") / "method-plugin"
    shutil.copytree(PLUGIN, source)  # setuptools builds in the source folder: a copy keeps examples/ clean
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(source)],
        check=True, capture_output=True, env={**os.environ, "PIP_NO_CACHE_DIR": "1"},
    )  # fmt: skip
    return target


def _vitool(plugin_path: Path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "vitool", *map(str, args)], capture_output=True, text=True, env=env)


def test_an_installed_plugin_method_trains(plugin_path, synth_root, tmp_path):
    assert "heterocenter" in _vitool(plugin_path, "train", "--help").stdout
    run = tmp_path / "run"
    args = ["train", "--method", "heterocenter", "--root", synth_root["sysu"], "--backbone", "mobilenet_v2"]
    args += ["--pretrained", "none", "--epochs", "2", "--batches-per-epoch", "2", "--optimizer", "adam", "-o", run]
    args += ["--set", "height=64", "--set", "width=32", "--set", "hc_weight=0.3", "--set", "warmup_epochs=1"]
    args += ["--set", "ids_per_batch=2", "--set", "images_per_id=2"]
    result = _vitool(plugin_path, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and log[0]["loss_terms"] == ["loss", "ce", "hetero_center"]
    assert all(r["hetero_center"] > 0 and abs(r["loss"] - r["ce"] - 0.3 * r["hetero_center"]) < 1e-4 for r in log)
    assert "hc_weight = 0.3" in (run / "config.toml").read_text()  # flat, like vitool's own keys
    assert "epoch 2/2" in result.stderr
    resumed = _vitool(plugin_path, "train", "--resume", run)  # the run folder reads back with its option
    assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_plugin_options_are_checked_by_the_plugin(plugin_path, synth_root, tmp_path):
    args = ["train", "--method", "heterocenter", "--root", synth_root["sysu"], "-o", tmp_path / "run"]
    one_line_error(_vitool(plugin_path, *args, "--set", "hc_weight=-1"), "hc_weight = -1", "use a value >= 0")
    # without the plugin installed, its option and its name are unknown
    res = subprocess.run([sys.executable, "-m", "vitool", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 2 and "heterocenter" in res.stderr


def test_a_taken_method_name_is_refused():
    from vitool.methods.registry import method_spec, register

    otla = method_spec("otla")
    with pytest.raises(ValueError, match="'otla' is already registered"):
        register("otla", lambda config, samples: None, "a plugin that would replace OTLA")
    assert method_spec("otla") is otla

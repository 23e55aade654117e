"""What vitool promises when a run or a file goes wrong (docs/reliability.md lists each promise with its test):
bad input is one line and exit 1, a config is checked before anything starts, a run folder has one writer
and a failed start leaves nothing, a run resumes from anywhere, an output that cannot be written is one line
and leaves no partial file, epochs are counted one way. Tiny synthetic data."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from vitool.errors import VitoolError
from vitool.io import atomic_output, make_provenance, read_features, write_features

from .conftest import one_line_error, random_featureset, run_cli

TINY = """dataset = "sysu"
backbone = "mobilenet_v2"
height = 64
width = 32
epochs = 1
ids_per_batch = 2
images_per_id = 2
batches_per_epoch = 2
optimizer = "adam"
lr = 3.5e-3
warmup_epochs = 1
milestones = []
val_ids = 2
seed = 3
workers = 0
"""


@pytest.fixture
def tiny_config(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture
def features_file(tmp_path) -> Path:
    fs = random_featureset()
    fs.attrs = {"dataset": "sysu", "split": "test", "trial": 0}
    write_features(tmp_path / "f.h5", fs, make_provenance({}))
    return tmp_path / "f.h5"


# ------------------------------------------------------------------------------ 1. config values checked


@pytest.mark.parametrize(
    ("in_file", "sets", "needles"),
    [
        ('epochs = "two"', [], ['epochs = "two"', "use an integer"]),
        ('lr = "fast"', [], ['lr = "fast"', "use a number"]),
        ("milestones = 5", [], ["milestones = 5", "use a list of numbers"]),
        ("epochs = -3", [], ["epochs = -3", "an epoch count >= 1"]),
        ("epochs = 2.5", [], ["epochs = 2.5", "use an integer"]),
        ('backbone = "resnet51"', [], ['backbone = "resnet51"', "one of resnet50, resnet18, mobilenet_v2"]),
        ("workers = true", [], ["workers = true", "use an integer"]),
        ('amp = "fp8"', [], ['amp = "fp8"', "one of auto, none, fp16, bf16"]),
        ("erasing = 1.5", [], ["erasing = 1.5", "a probability in [0, 1]"]),
        ("", ["lr=abc"], ["command line", 'lr = "abc"', "use a number"]),
        ("", ["lr="], ["command line", 'lr = ""', "use a number"]),
        ("", ["milestones=[0.75"], ["command line", 'milestones = "[0.75"', "a list of numbers"]),
        ("", ["lr=-1"], ["command line", "lr = -1", "a learning rate > 0"]),
        ("", ['ids_per_batch="abc"'], ["command line", 'ids_per_batch = "abc"', "use an integer"]),
        ("", ["ot_lambda=5"], ["ot_lambda is not read by method supervised", "it belongs to otla, visible"]),
        ("", ["method=mystery"], ["method = 'mystery'", "use one of"]),
    ],
)
def test_a_bad_config_value_is_one_line_before_any_folder(tmp_path, synth_root, tiny_config, in_file, sets, needles):
    config = tmp_path / "c.toml"
    config.write_text(f'base = "{tiny_config.name}"\n{in_file}\n')
    args = [a for s in sets for a in ("--set", s)]
    line = one_line_error(
        run_cli("train", "--config", config, "--root", synth_root["sysu"], *args, "-o", tmp_path / "run"), *needles
    )
    assert in_file == "" or str(config) in line  # the file the value came from
    assert not (tmp_path / "run").exists()


def test_an_error_names_the_base_file_the_value_came_from(tmp_path, synth_root):
    (tmp_path / "base.toml").write_text(TINY + "gamma = -0.1\n")
    (tmp_path / "variant.toml").write_text('base = "base.toml"\nlr = 0.01\n')
    line = one_line_error(
        run_cli("train", "--config", tmp_path / "variant.toml", "--root", synth_root["sysu"], "-o", tmp_path / "r")
    )
    assert line.startswith(f"vitool: error: {tmp_path / 'base.toml'}: gamma = -0.1")


def test_every_key_is_listed_with_its_type_default_and_meaning():
    from vitool.engine.config import KEYS
    from vitool.methods.registry import option_keys

    res = run_cli("recipes", "--keys", "--json")
    rows = {r["key"]: r for r in json.loads(res.stdout)}
    assert set(rows) == KEYS | set(option_keys())
    assert rows["lr"]["type"] == "float" and rows["lr"]["default"] == 0.1 and "> 0" in rows["lr"]["allowed"]
    assert rows["ot_lambda"]["methods"] == ["otla", "visible"] and "Sinkhorn" in rows["ot_lambda"]["meaning"]
    assert rows["dcl_epochs"]["meaning"]  # explained in a base class of the method's options
    assert "vitool recipes --keys" in run_cli("train", "--help").stdout


# ------------------------------------------------------------------------------ 2-4, 8. run folders


def _swap_root_without_infrared(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for cam in ("cam3", "cam6"):
        shutil.rmtree(dst / cam)
        (dst / cam).mkdir()
    return dst


def test_a_failed_start_leaves_nothing_behind(tmp_path, synth_root, tiny_config, monkeypatch):
    no_ir = _swap_root_without_infrared(synth_root["sysu"], tmp_path / "no_ir")
    one_line_error(
        run_cli("train", "--config", tiny_config, "--root", no_ir, "-o", tmp_path / "run"), "no infrared training"
    )
    assert not (tmp_path / "run").exists()  # the message names the cause, not a later evaluation
    (tmp_path / "empty").mkdir()
    one_line_error(run_cli("train", "--config", tiny_config, "--root", no_ir, "-o", tmp_path / "empty"))
    assert list((tmp_path / "empty").iterdir()) == []  # a folder that was there stays, as it was

    from vitool.engine import trainer

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "scratch"))

    monkeypatch.setattr(trainer.Engine, "_train_epoch", disk_full)  # fails in the first epoch
    line = one_line_error(
        run_cli("train", "--config", tiny_config, "--root", synth_root["sysu"], "-o", tmp_path / "run")
    )
    assert str(tmp_path / "run" / "scratch") in line and "No space left on device" in line
    assert not (tmp_path / "run").exists()
    one_line_error(run_cli("train", "--resume", tmp_path / "run"), "has no last.pt")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a user's file")
    one_line_error(run_cli("train", "--config", tiny_config, "--root", no_ir, "-o", tmp_path / "mine"), "not empty")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]  # no lock file left in it


def _hold_lock(run: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock as a vitool train does (flock on RUN/.lock, its pid)."""
    code = (
        "import fcntl, os, sys, time\n"
        f"f = open({str(run / '.lock')!r}, 'a+')\n"
        "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "f.seek(0); f.truncate(); f.write(f'{os.getpid()}\\n'); f.flush()\n"
        "print('locked', flush=True)\n"
        "time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_one_writer_per_run_folder_and_resume_from_anywhere(tmp_path, synth_root, tiny_config, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synth_root["sysu"], data / "sysu")
    monkeypatch.chdir(data)  # the root typed relative to where the run starts
    first = run_cli("train", "--config", tiny_config, "--root", "sysu", "-o", tmp_path / "run")
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "run"
    saved = (run / "config.toml").read_text()
    assert f'root = "{data / "sysu"}"' in saved  # stored absolute

    holder = _hold_lock(run)
    try:
        for args in (["--resume", run, "--epochs", "2"], ["--config", tiny_config, "--root", "sysu", "-o", run]):
            one_line_error(run_cli("train", *args), str(run), f"in use by another vitool train (pid {holder.pid})")
    finally:
        holder.send_signal(signal.SIGKILL)  # as kill -9: the lock file stays, the lock does not
        holder.wait()
    assert (run / ".lock").read_text().strip() == str(holder.pid)

    monkeypatch.chdir(tmp_path)  # resumed from another working directory
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal width must not break a logged line
    resumed = run_cli("train", "--resume", run, "--epochs", "2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at epoch 2/2" in resumed.stderr
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]  # 8. the epochs a person reads, in the log too
    epoch_lines = [line for line in resumed.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 1 and epoch_lines[0].startswith("epoch 2/2") and "val Rank-1" in epoch_lines[0]

    moved = tmp_path / "moved"
    (data / "sysu").rename(moved)
    one_line_error(run_cli("train", "--resume", run, "--epochs", "3"), "sysu")  # the saved root is gone
    one_line_error(run_cli("train", "--resume", run, "--lr", "0.5"), "a resumed run keeps its saved lr", "drop it")
    one_line_error(run_cli("train", "--resume", run, "--config", tiny_config), "keeps its saved config")
    resumed = run_cli("train", "--resume", run, "--root", moved, "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f'root = "{moved}"' in (run / "config.toml").read_text()


def test_every_path_of_a_run_is_stored_absolute(tmp_path, synth_root, monkeypatch):
    from vitool.engine.run_folder import run_config

    monkeypatch.chdir(tmp_path)
    given = {"root": "data", "labels": "l.h5", "image_cache": "c.h5", "pretrained": "weights/r50.pth"}
    config, _ = run_config(tmp_path / "run", None, None, given)
    assert all(getattr(config, k) == str(tmp_path / v) for k, v in given.items())
    named, _ = run_config(tmp_path / "run", None, None, {"root": "data", "pretrained": "imagenet"})
    assert named.pretrained == "imagenet" and named.labels == ""  # names and empty values stay as they are


def test_the_lock_is_refused_on_a_second_writer_in_this_process(tmp_path):
    from vitool.engine.run_folder import run_folder

    with run_folder(tmp_path / "run", resume=False):
        with pytest.raises(VitoolError, match=rf"in use by another vitool train \(pid {os.getpid()}\)"):
            with run_folder(tmp_path / "run", resume=True):
                pass


# ------------------------------------------------------------------------------ 5. outputs that cannot be written


def test_every_writer_says_in_one_line_when_its_output_cannot_be_written(
    tmp_path, synth_root, features_file, monkeypatch
):
    (tmp_path / "afile").write_text("a file, not a folder")
    bad = tmp_path / "afile"
    labels = tmp_path / "labels.h5"
    assert run_cli("cluster", features_file, "--method", "kmeans", "--k", "4", "-o", labels).returncode == 0

    from vitool.models import features as extraction

    def never(*args, **kwargs):
        raise AssertionError("computed before the output was checked")

    monkeypatch.setattr(extraction, "extract_featureset", never)
    root = synth_root["sysu"]
    commands = {
        "evaluate -o": ["evaluate", features_file, "-o", bad / "r.json"],
        "evaluate --plot": ["evaluate", features_file, "--plot", bad / "cmc.png"],
        "extract-features": ["extract-features", "--dataset", "sysu", "--root", root, "-o", bad / "f.h5"],
        "cluster": ["cluster", features_file, "--method", "kmeans", "--k", "4", "-o", bad / "l.h5"],
        "assign-labels": ["assign-labels", features_file, "--labels", labels, "--method", "mult", "-o", bad / "a.h5"],
        "weak-labels": ["weak-labels", "--dataset", "sysu", "--root", root, "-o", bad / "w.h5"],
        "show ranks": ["show", "ranks", features_file, "--root", root, "-o", bad / "r.png"],
        "show embedding": ["show", "embedding", features_file, "-o", bad / "e.png"],
        "cache": ["cache", "--dataset", "sysu", "--root", root, "-o", bad / "c.h5"],
        "synth": ["synth", bad / "data", "--train-ids", "4", "--test-ids", "2"],
        "convert": ["convert", features_file, "-o", bad / "c.pt"],
        "compare --plot": ["compare", f"a={tmp_path}", f"b={tmp_path}", "--plot", bad / "c.png"],
    }
    for name, args in commands.items():
        res = run_cli(*args)
        assert res.returncode == 1, (name, res.stderr[-2000:])
        one_line_error(res, str(bad), "is a file, not a folder")
    one_line_error(run_cli("evaluate", features_file, "-o", tmp_path / ("x" * 300 + ".json")), "name is too long")
    one_line_error(
        run_cli("cluster", features_file, "-o", features_file, "--overwrite"), "is also this command's input"
    )
    assert read_features(features_file).features.shape[0] == 70  # the input is intact


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path):
    out = tmp_path / "results.json"
    out.write_text("earlier results")
    with pytest.raises(VitoolError, match=r"no space left on the device\); free some space or write elsewhere"):
        with atomic_output(out, overwrite=True) as tmp:
            tmp.write_text("half of it")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert out.read_text() == "earlier results" and sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_long_names_work_and_python_callers_get_python_wording(tmp_path):
    from vitool import api

    fs = random_featureset()
    long_name = tmp_path / ("f" * 247 + ".h5")  # 250 bytes: legal, and its temporary name must be too
    api.write_features(long_name, fs)
    assert read_features(long_name).features.shape == fs.features.shape
    assert sorted(p.name for p in tmp_path.iterdir()) == [long_name.name]
    with pytest.raises(VitoolError, match=r"overwrite=True"):
        api.write_features(long_name, fs)
    (tmp_path / "afile").write_text("")
    with pytest.raises(VitoolError, match="is a file, not a folder"):  # not a raw OSError
        api.write_features(tmp_path / "afile" / "f.h5", fs)


def test_a_synth_that_fails_leaves_nothing_and_the_next_one_works(tmp_path, monkeypatch):
    from vitool.data import synth

    real = synth._write_sysu

    def fails_halfway(root, *args):
        real(root, *args)
        raise OSError(errno.ENOSPC, "No space left on device")

    config = synth.SynthConfig(layout="sysu", train_ids=4, test_ids=2, images=1, seed=0)
    monkeypatch.setattr(synth, "_write_sysu", fails_halfway)
    with pytest.raises(VitoolError, match="no space left"):
        synth.generate(tmp_path / "data", config)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synth, "_write_sysu", real)
    synth.generate(tmp_path / "data", config)
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


# ------------------------------------------------------------------------------ 6. feature files checked


def _damage(path: Path, name: str, values) -> None:
    with h5py.File(path, "a") as handle:
        del handle[name]
        handle[name] = values


@pytest.mark.parametrize(
    ("name", "damage", "needles"),
    [
        ("features_pre_bn", "nan", ["features_pre_bn", "NaN"]),
        ("features", "zeros", ["features", "all-zero rows"]),
        ("path", "bytes", ["path", "not UTF-8"]),
    ],
)
def test_damaged_feature_files_are_one_line(tmp_path, name, damage, needles):
    fs = random_featureset()
    fs.features_pre_bn = fs.features.copy()
    write_features(tmp_path / "f.h5", fs, make_provenance({}))
    if damage == "nan":
        values = fs.features_pre_bn.copy()
        values[3, 1] = np.nan
    elif damage == "zeros":
        values = fs.features.copy()
        values[5] = 0
    else:
        values = np.array([b"cam1/0001/\xff\xfe.jpg"] * len(fs.path), dtype=h5py.vlen_dtype(bytes))
    _damage(tmp_path / "f.h5", name, values)
    scored = ["--feature", "features_pre_bn"] if name == "features_pre_bn" else []
    one_line_error(run_cli("evaluate", tmp_path / "f.h5", *scored), "f.h5", *needles)
    if name == "path":
        one_line_error(run_cli("info", tmp_path / "f.h5"), "f.h5", *needles)


def test_info_describes_an_image_cache(tmp_path, synth_root):
    assert (
        run_cli(
            "cache",
            "--dataset",
            "sysu",
            "--root",
            synth_root["sysu"],
            "--height",
            "32",
            "--width",
            "16",
            "-o",
            tmp_path / "c.h5",
        ).returncode
        == 0
    )
    res = run_cli("info", tmp_path / "c.h5", "--json")
    info = json.loads(res.stdout)
    assert res.returncode == 0 and info["kind"] == "image_cache" and info["rows"] > 0


# ------------------------------------------------------------------------------ 7. messages and the worth-deciding


def test_messages_point_to_what_works(tmp_path, synth_root, tiny_config, features_file):
    line = one_line_error(
        run_cli(
            "train",
            "--config",
            tiny_config,
            "--root",
            synth_root["sysu"],
            "--set",
            "ids_per_batch=50",
            "-o",
            tmp_path / "run",
        ),
        "50 are needed per batch",
        "lower ids_per_batch",
    )
    assert line and not (tmp_path / "run").exists()  # ids_per_batch alone took effect: the message is true
    line = one_line_error(
        run_cli(
            "show",
            "ranks",
            features_file,
            "--root",
            synth_root["sysu"],
            "--protocol",
            "regdb",
            "-o",
            tmp_path / "r.png",
        )
    )
    flag = "--cross-dataset"
    assert flag in line and flag in run_cli("show", "ranks", "--help").stdout


def test_train_split_features_are_not_scored_as_a_test(tmp_path):
    fs = random_featureset()
    fs.attrs = {"dataset": "sysu", "split": "train", "trial": 0}
    write_features(tmp_path / "train.h5", fs, make_provenance({}))
    one_line_error(run_cli("evaluate", tmp_path / "train.h5"), "train split", "--split test")
    assert run_cli("evaluate", tmp_path / "train.h5", "--protocol", "generic").returncode == 0


def test_show_ranks_refuses_a_root_whose_images_are_not_the_files(tmp_path, synth_root):
    root = tmp_path / "sysu"
    shutil.copytree(synth_root["sysu"], root)
    made = run_cli(
        "extract-features",
        "--dataset",
        "sysu",
        "--root",
        root,
        "--backbone",
        "mobilenet_v2",
        "--height",
        "64",
        "--width",
        "32",
        "--pretrained",
        "none",
        "-o",
        tmp_path / "f.h5",
    )
    assert made.returncode == 0, made.stderr[-2000:]
    args = ["show", "ranks", tmp_path / "f.h5", "--root", root, "--random", "1", "--best", "0", "--worst", "0"]
    assert run_cli(*args, "-o", tmp_path / "ok.png").returncode == 0
    first, second = sorted(p for p in (root / "cam1").iterdir() if p.is_dir())[:2]  # two people swapped
    first.rename(root / "cam1" / "swap")
    second.rename(first)
    (root / "cam1" / "swap").rename(second)
    one_line_error(
        run_cli(*args, "-o", tmp_path / "swapped.png"), "does not hold the images the features were made from"
    )
    assert not (tmp_path / "swapped.png").exists()


# ------------------------------------------------------------------------------ 9. config.toml is what ran


DEMOS = {
    "demo": ["supervised", "otla", "visible", "experts"],
    "demo-unsupervised": ["dcl", "pclhd"],
    "demo-mult": ["mult"],
}


@pytest.mark.parametrize("recipe", DEMOS)
def test_config_toml_holds_the_resolved_values_of_every_demo(tmp_path, synth_root, recipe):
    from vitool.engine.config import dump_config, load_config
    from vitool.engine.trainer import Engine

    for method in DEMOS[recipe]:
        config = load_config(recipe, {"root": str(synth_root["sysu"]), "method": method, "val_ids": 0})
        resolved = Engine(config, tmp_path / method, log=lambda _: None).config  # what config.toml gets
        assert resolved.height > 0 and resolved.width > 0, method
        assert resolved.ids_per_batch > 0 and resolved.images_per_id > 0 and resolved.batches_per_epoch > 0
        assert 0 <= resolved.visible_grayscale <= 1 and 0 <= resolved.visible_channel_exchange <= 1
        assert resolved.warmup_factor >= 0 and resolved.schedule_stages != [-1]
        assert resolved.method_options.get("dcl_epochs", 0) >= 0 and resolved.method_options.get("association") != ""
        (tmp_path / "written.toml").write_text(dump_config(resolved))
        assert load_config(tmp_path / "written.toml", {}) == resolved, method  # read back: the same run


def test_the_api_refuses_train_split_features_as_the_cli_does():
    import vitool

    fs = random_featureset()
    fs.attrs = {"dataset": "sysu", "split": "train", "trial": 0}
    with pytest.raises(ValueError, match="train split"):
        vitool.evaluate(fs.features, fs)
    assert vitool.evaluate(fs.features, fs, protocol="generic").rank1 >= 0

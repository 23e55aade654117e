"""Checkpoints are data: no command that reads one runs code from it, and every bad one is one line."""

import pickle

import numpy as np
import pytest
import torch

from vitool.engine.config import dump_config
from vitool.errors import VitoolError
from vitool.models.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from vitool.models.network import ModelConfig, VIReIDNet

from .conftest import Payload, one_line_error, run_cli, tiny


def _payload_checkpoint(path, marker):
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none")
    state = {
        "vitool_checkpoint": 1,
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        "epoch": 0,
        "x": Payload(marker),
    }
    torch.save(state, path)


def test_the_payload_is_live_so_the_tests_below_can_fail(tmp_path):
    _payload_checkpoint(tmp_path / "evil.pt", tmp_path / "ran")
    torch.load(tmp_path / "evil.pt", weights_only=False)  # what vitool did before: the command runs
    assert (tmp_path / "ran").exists()


def test_no_command_runs_a_checkpoint_payload(tmp_path, synth_root):
    evil, marker = tmp_path / "evil.pt", tmp_path / "ran"
    _payload_checkpoint(evil, marker)
    root = synth_root["regdb"]
    data = ("--dataset", "regdb", "--root", root)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(dump_config(tiny(synth_root["sysu"], pretrained="none")))
    (run_dir / "last.pt").write_bytes(evil.read_bytes())
    for args in (
        ("evaluate", "--checkpoint", evil, *data),
        ("extract-features", "--checkpoint", evil, *data, "-o", tmp_path / "f.h5"),
        ("train", "--resume", run_dir),
    ):
        res = run_cli(*args)
        one_line_error(res, "posix.system", "not a safe checkpoint")
        assert not marker.exists(), args
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "cannot be read"),
        (b"PK\x03\x04 not really a zip", "cannot be read"),
        (pickle.dumps({"a": 1})[:-3], "cannot be read"),
    ],
)
def test_unreadable_files_are_one_line(tmp_path, synth_root, content, needle):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(VitoolError, match=needle):
        load_checkpoint(tmp_path / "bad.pt")
    data = ("--dataset", "regdb", "--root", synth_root["regdb"])
    one_line_error(run_cli("evaluate", "--checkpoint", tmp_path / "bad.pt", *data), "bad.pt", needle)


def test_truncated_and_malformed_vitool_checkpoints(tmp_path, synth_root):
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none")
    save_checkpoint(tmp_path / "good.pt", model)
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    full = torch.load(tmp_path / "good.pt", weights_only=True)
    torch.save({k: v for k, v in full.items() if k != "model_config"}, tmp_path / "no_config.pt")
    torch.save({**full, "model_config": {**full["model_config"], "backbone": "vgg"}}, tmp_path / "bad_config.pt")
    torch.save({**full, "model_config": {**full["model_config"], "colour": 1}}, tmp_path / "odd_config.pt")
    shapes = dict(full["model_state"])
    shapes["bnneck.weight"] = torch.ones(3)
    torch.save({**full, "model_state": shapes}, tmp_path / "bad_shapes.pt")
    torch.save({"net": full["model_state"]}, tmp_path / "foreign.pt")
    cases = {
        "truncated.pt": "cannot be read",
        "no_config.pt": "no model_config",
        "bad_config.pt": "does not build",
        "odd_config.pt": "does not build",
        "bad_shapes.pt": "does not fit",
        "foreign.pt": "not a vitool checkpoint",
    }
    for name, needle in cases.items():
        with pytest.raises(VitoolError, match=needle):
            model_from_checkpoint(tmp_path / name)
    data = ("--dataset", "regdb", "--root", synth_root["regdb"])
    res = run_cli("evaluate", "--checkpoint", tmp_path / "bad_shapes.pt", *data)
    one_line_error(res, "bad_shapes.pt", "bnneck.weight")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text(dump_config(tiny(synth_root["sysu"], pretrained="none")))
    (run_dir / "last.pt").write_bytes((tmp_path / "good.pt").read_bytes())  # weights only: no optimiser state
    one_line_error(run_cli("train", "--resume", run_dir), "last.pt", "no epoch, optimizer, scaler, method")


def test_what_vitool_writes_loads_with_weights_only(tmp_path):
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none")
    extra = {"method": {"bank": np.arange(6).reshape(2, 3), "report": {"acc": np.float64(0.25), "n": np.int64(3)}}}
    save_checkpoint(tmp_path / "m.pt", model, extra)
    state = torch.load(tmp_path / "m.pt", weights_only=True)  # plain torch, no extra globals
    assert torch.equal(state["method"]["bank"], torch.arange(6).reshape(2, 3))
    assert state["method"]["report"] == {"acc": 0.25, "n": 3} and type(state["method"]["report"]["n"]) is int


def test_a_checkpoint_holding_numpy_values_loads(tmp_path):
    """Released repositories pickle numpy arrays and scalars beside the weights (AGW's cmc)."""
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none")
    old = {
        "vitool_checkpoint": 1,
        "vitool_version": "0.1.0",
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        "method": {
            "bank": np.array([[0.1, 0.9]], dtype=np.float32),
            "intra": np.array([0, 1, -1]),
            "flags": np.array([True, False]),
            "report": {"acc": np.float64(0.5), "offset": np.int64(4)},
        },
    }
    torch.save(old, tmp_path / "old.pt")
    state = load_checkpoint(tmp_path / "old.pt")
    np.testing.assert_array_equal(state["method"]["intra"], [0, 1, -1])
    assert state["method"]["bank"].dtype == np.float32 and state["method"]["report"]["acc"] == 0.5
    loaded = model_from_checkpoint(tmp_path / "old.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)

"""End to end through the real command line: synth -> extract-features -> evaluate, and bad input."""

import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from vitool.io import make_provenance, write_features

from .conftest import assign_cli, one_line_error, random_featureset, run_cli


@pytest.fixture(scope="module")
def features_file(tmp_path_factory, synth_root):
    out = tmp_path_factory.mktemp("cli") / "features.h5"
    res = run_cli(
        "extract-features",
        "--dataset",
        "sysu",
        "--root",
        synth_root["sysu"],
        "--backbone",
        "mobilenet_v2",
        "--pretrained",
        "imagenet",
        "-o",
        out,
        "--device",
        "cpu",
    )
    assert res.returncode == 0, res.stderr
    return out


def test_version_and_help():
    res = run_cli("--version")
    assert res.returncode == 0 and res.stdout.startswith("vitool ")
    res = run_cli("--help")
    for command in ("synth", "extract-features", "evaluate", "info"):
        assert command in res.stdout


def test_extract_then_evaluate_json(features_file, synth_root, tmp_path):
    with h5py.File(features_file) as h:
        assert h["features"].shape[1] == 1280 and h["features_pre_bn"].shape == h["features"].shape
        prov = json.loads(h.attrs["provenance"])
    assert prov["config"]["dataset"] == "sysu" and len(prov["inputs"]["dataset_listing"]) == 64
    machine = prov["machine"]  # the same seed differs across CPUs: pairs must share one machine
    assert machine["cpu"] and machine["cores"] >= 1 and machine["threads"] >= 1 and machine["torch"]
    res = run_cli(
        "evaluate",
        features_file,
        "--protocol",
        "sysu",
        "--json",
        "-o",
        tmp_path / "r.json",
        "--plot",
        tmp_path / "cmc.png",
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert set(out) >= {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP", "trials"}
    assert len(out["trials"]) == 10 and 0 <= out["rank1"] <= out["rank5"] <= out["rank20"] <= 100
    assert json.loads((tmp_path / "r.json").read_text())["mAP"] == out["mAP"]
    assert (tmp_path / "cmc.png").read_bytes()[:4] == b"\x89PNG"
    indoor = json.loads(run_cli("evaluate", features_file, "--mode", "indoor", "--json").stdout)
    assert indoor["trials"][0]["gallery"] < out["trials"][0]["gallery"]


def test_evaluate_needs_neither_torch_nor_faiss(features_file):
    code = (
        "import sys\n"
        f"sys.argv = ['vitool', 'evaluate', {str(features_file)!r}, '--json', '--trials', '2']\n"
        "from vitool.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code\n"
        "assert 'torch' not in sys.modules and 'faiss' not in sys.modules, 'heavy import'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_checkpoint_is_self_describing(tmp_path, synth_root, features_file):
    import torch

    from vitool.models.checkpoint import save_checkpoint
    from vitool.models.network import ModelConfig, VIReIDNet

    torch.manual_seed(0)
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, num_classes=7, height=64, width=32))
    save_checkpoint(tmp_path / "m.pt", model)
    res = run_cli(
        "extract-features",
        "--dataset",
        "regdb",
        "--root",
        synth_root["regdb"],
        "--trial",
        "2",
        "--checkpoint",
        tmp_path / "m.pt",
        "-o",
        tmp_path / "f.h5",
        "--flip",
    )
    assert res.returncode == 0, res.stderr
    with h5py.File(tmp_path / "f.h5") as h:
        assert h["probs"].shape[1] == 7 and h["features"].shape[1] == 512
        np.testing.assert_allclose(h["probs"][()].sum(axis=1), 1, rtol=1e-5)
    direct = json.loads(run_cli("evaluate", tmp_path / "f.h5", "--json").stdout)
    res = run_cli(
        "evaluate",
        "--checkpoint",
        tmp_path / "m.pt",
        "--dataset",
        "regdb",
        "--root",
        synth_root["regdb"],
        "--trial",
        "2",
        "--flip",
        "--json",
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["mAP"] == pytest.approx(direct["mAP"], abs=1e-6)
    assert direct["protocol"] == "regdb" and direct["direction"] == "v2i"


def test_bad_input_gets_one_line(tmp_path, synth_root, features_file):
    (tmp_path / "junk.h5").write_text("junk")
    one_line_error(run_cli("evaluate", tmp_path / "junk.h5"), "junk.h5", "not a readable HDF5")
    one_line_error(run_cli("evaluate", tmp_path / "missing.h5"), "missing.h5", "no such file")
    with h5py.File(tmp_path / "foreign.h5", "w") as h:
        h["x"] = [1, 2]
    one_line_error(run_cli("info", tmp_path / "foreign.h5"), "not a vitool stage file")
    fs = random_featureset()
    fs.cam[:] = 1
    write_features(tmp_path / "nocam3.h5", fs, make_provenance({}))
    one_line_error(run_cli("evaluate", tmp_path / "nocam3.h5", "--protocol", "sysu"), "empty query set")
    one_line_error(
        run_cli(
            "extract-features",
            "--dataset",
            "llcm",
            "--root",
            synth_root["sysu"],
            "--backbone",
            "mobilenet_v2",
            "-o",
            tmp_path / "x.h5",
        ),
        "not a LLCM root",
        "idx/",
    )
    one_line_error(
        run_cli("extract-features", "--dataset", "sysu", "--root", tmp_path / "nowhere", "-o", tmp_path / "x.h5"),
        "nowhere",
        "does not exist",
    )
    assert not (tmp_path / "x.h5").exists()
    one_line_error(run_cli("evaluate", features_file, "-o", features_file), "already exists", "--overwrite")
    one_line_error(
        run_cli(
            "extract-features",
            "--dataset",
            "sysu",
            "--root",
            synth_root["sysu"],
            "--pretrained",
            tmp_path / "none.pth",
            "-o",
            tmp_path / "x.h5",
        ),
        "none.pth",
    )
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_usage_errors_exit_2(features_file):
    assert run_cli("evaluate", features_file, "--bogus").returncode == 2
    assert run_cli("evaluate", features_file, "--protocol", "market").returncode == 2
    assert run_cli("extract-features", "--dataset", "sysu").returncode == 2
    assert run_cli("evaluate").returncode == 2


def test_a_corrupt_image_is_one_line_even_from_dataloader_workers(tmp_path, synth_root):
    import shutil

    root = tmp_path / "regdb"
    shutil.copytree(synth_root["regdb"], root)
    listed = (root / "idx" / "train_thermal_1.txt").read_text().split()[0]
    (root / listed).write_bytes(b"not an image")
    for workers in ("0", "2"):
        res = run_cli(
            "extract-features",
            "--dataset",
            "regdb",
            "--root",
            root,
            "--trial",
            "1",
            "--split",
            "train",
            "--backbone",
            "mobilenet_v2",
            "--workers",
            workers,
            "-o",
            tmp_path / "f.h5",
            isolated=workers != "0",  # a real process: what worker processes print reaches its stderr
        )
        one_line_error(res, listed, "cannot be decoded")
    assert not (tmp_path / "f.h5").exists()


def test_synth_features_through_cluster_and_every_association(features_file, tmp_path):
    res = run_cli("cluster", features_file, "--method", "kmeans", "--k", "5", "-o", tmp_path / "c.h5", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["diagnostics"]["rows"] > 0
    for method in ("ot", "mult", "experts", "hungarian"):
        res = assign_cli(features_file, tmp_path / "c.h5", method, tmp_path / f"{method}.h5")
        assert res.returncode == 0, (method, res.stderr)
        out = json.loads(res.stdout)
        assert 0.0 <= out["diagnostics"]["cross_modal_accuracy"] <= 1.0
        info = json.loads(run_cli("info", tmp_path / f"{method}.h5", "--json").stdout)
        assert info["kind"] == "labels" and info["method"] == method


def test_a_protocol_of_another_dataset_is_refused_unless_asked_for(features_file, tmp_path):
    for protocol in ("regdb", "llcm"):
        one_line_error(
            run_cli("evaluate", features_file, "--protocol", protocol), "dataset 'sysu'", "--protocol sysu or generic"
        )
    assert run_cli("evaluate", features_file, "--protocol", "generic").returncode == 0
    res = run_cli("evaluate", features_file, "--protocol", "regdb", "--cross-dataset", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["cross_dataset"] == {"features_dataset": "sysu", "protocol": "regdb"}
    assert out["provenance"]["config"]["cross_dataset"] is True
    one_line_error(
        run_cli("show", "ranks", features_file, "--root", tmp_path, "-o", tmp_path / "r.png", "--protocol", "llcm"),
        "dataset 'sysu'",
    )
    assert not (tmp_path / "r.png").exists()


def test_the_choices_the_command_line_writes_again_equal_the_library_s():
    """The command line offers choice lists of numpy-importing modules without importing them."""
    from vitool.assign.mult import SPACES
    from vitool.assign.ot import COSTS
    from vitool.cli import common as cli
    from vitool.cluster import METHODS
    from vitool.compare import STYLES
    from vitool.data.synth import INFRARED_MODELS

    pairs = [(cli.InfraredModel, INFRARED_MODELS), (cli.ClusterMethod, METHODS), (cli.Space, SPACES)]
    for choices, library in [*pairs, (cli.OtCost, COSTS), (cli.TableFormat, STYLES)]:
        assert tuple(c.value for c in choices) == tuple(library), choices


def test_every_command_is_a_call_of_one_stage_function():
    """The command line parses and prints; the work is in vitool.stages, which the Python API exports."""
    import inspect

    from vitool import stages
    from vitool.cli import app

    groups = [group.typer_instance.registered_commands for group in app.registered_groups]
    commands = [*app.registered_commands, *(command for group in groups for command in group)]
    assert len(commands) >= 16
    for command in commands:
        called = set(re.findall(r"stages\.(\w+)\(", inspect.getsource(command.callback))) - {"describe_protocol"}
        assert len(called) == 1 and callable(getattr(stages, called.pop())), command.callback.__name__


def test_the_info_and_recipes_stages_return_what_their_commands_print(features_file):
    from vitool import stages

    def printed(*args):
        return json.loads(run_cli(*args, "--json").stdout)

    def as_json(value):
        return json.loads(json.dumps(value))

    assert printed("info", features_file) == as_json(stages.info(features_file))
    assert printed("recipes", "demo") == stages.recipes("demo")
    assert printed("recipes", "--keys") == as_json(stages.recipes(keys=True))


def test_synth_prints_its_counts_beside_its_options(tmp_path):
    made = json.loads(run_cli("synth", tmp_path / "d", "--layout", "regdb", "--train-ids", "4", "--test-ids", "2",
                              "--images", "1", "--json").stdout)  # fmt: skip
    assert made["identities"] == 6 and made["images"] == 6 * 2 * 2  # RegDB: 2 x images per identity and modality
    assert made["options"]["images"] == 1 and made["options"]["layout"] == "regdb"

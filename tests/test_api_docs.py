"""docs/api.md: every Python example runs, in order, and its numbers equal those of the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

import vitool

from .conftest import run_cli
from .released import released_checkpoint

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _cli_json(*args, cwd) -> dict:
    res = run_cli(*args, "--json", cwd=cwd)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _same_scores(api_result, cli: dict) -> None:
    for key in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP"):
        assert getattr(api_result, key) == pytest.approx(cli[key], abs=1e-9), key
    assert [t["gallery"] for t in api_result.trials] == [t["gallery"] for t in cli["trials"]]


@pytest.fixture(scope="module")
def ran(tmp_path_factory, synth_root):
    """The page's setup (smaller data), then every ```python block in one namespace, in the page's order."""
    work = tmp_path_factory.mktemp("api")
    (work / "data").mkdir()
    (work / "data" / "sysu").symlink_to(synth_root["sysu"])
    for split, out in (("test", "feats.h5"), ("train", "train.h5")):
        args = ("--dataset", "sysu", "--root", "data/sysu", "--split", split, "--backbone", "mobilenet_v2")
        res = run_cli("extract-features", *args, "-o", out, cwd=work)
        assert res.returncode == 0, res.stderr
    torch.save(released_checkpoint("agw"), work / "agw_released.pth")
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 7
    namespace: dict = {}
    code = f"import os\nos.chdir({str(work)!r})\n"
    for block in blocks:
        exec(compile(code + block, str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
        code = ""
    return work, namespace


def test_a_features_file_and_its_indoor_reranked_score_equal_the_cli(ran):
    work, ns = ran
    _same_scores(ns["result"], _cli_json("evaluate", "feats.h5", "--protocol", "sysu", "--mode", "all", cwd=work))
    cli = _cli_json("evaluate", "feats.h5", "--mode", "indoor", "--rerank", cwd=work)
    _same_scores(ns["indoor"], cli)
    assert ns["indoor"].reranked == cli["reranked"] == {"k1": 20, "k2": 6, "lambda": 0.3}
    assert ns["result"].as_dict()["cmc"] == pytest.approx(_cli_json("evaluate", "feats.h5", cwd=work)["cmc"], abs=1e-9)


def test_own_arrays_equal_the_cli_on_the_same_rows(ran, tmp_path):
    _, ns = ran
    fs = vitool.FeatureSet(
        features=np.asarray(ns["emb"], dtype=np.float32),
        path=np.array([f"{i:09d}" for i in range(40)], dtype=object),
        pid=ns["pid"],
        cam=np.full(40, -1),
        modality=ns["modality"].astype(np.uint8),
    )
    vitool.write_features(tmp_path / "own.h5", fs)
    _same_scores(ns["own"], _cli_json("evaluate", tmp_path / "own.h5", "--protocol", "generic", cwd=tmp_path))
    assert ns["own"].rank1 > 50  # separable identities score far above chance (10%)


def test_a_plain_torch_model_in_a_training_loop_scores_like_the_cli(ran):
    work, ns = ran
    assert ns["feats"].shape == (len(ns["test_set"]), 32)
    _same_scores(ns["scores"], _cli_json("evaluate", "mine.h5", cwd=work))
    with h5py.File(work / "mine.h5") as handle:
        assert json.loads(handle.attrs["provenance"])["config"] == {"model": "my conv net"}
        assert handle.attrs["dataset"] == "sysu"
    cli = _cli_json("evaluate", "mine.h5", "--mode", "indoor", cwd=work)
    trials = ns["trials"]
    assert len(trials) == 10 and [len(t.gallery) for t in trials] == [t["gallery"] for t in cli["trials"]]
    assert all(len(t.query) == c["queries"] for t, c in zip(trials, cli["trials"], strict=True))


def test_clustering_and_association_equal_the_cli(ran):
    work, ns = ran
    res = run_cli("cluster", "train.h5", "--k1", "10", "--eps", "0.5", "--min-samples", "2", "-o", "c.h5", cwd=work)
    assert res.returncode == 0, res.stderr
    cli_clusters = vitool.read_labels(work / "c.h5")
    np.testing.assert_array_equal(cli_clusters.label, ns["clusters"])
    res = run_cli("assign-labels", "train.h5", "--labels", "c.h5", "--method", "hungarian", "-o", "a.h5", cwd=work)
    assert res.returncode == 0, res.stderr
    np.testing.assert_array_equal(vitool.read_labels(work / "a.h5").label, ns["assignment"].label)
    np.testing.assert_array_equal(vitool.read_labels(work / "hungarian.h5").label, ns["assignment"].label)


def test_a_converted_released_checkpoint_scores_like_evaluate_checkpoint(ran):
    work, ns = ran
    assert ns["converted"].format == "agw"
    cli = _cli_json("evaluate", "--checkpoint", "agw.pt", "--dataset", "sysu", "--root", "data/sysu", cwd=work)
    _same_scores(vitool.evaluate(ns["agw"].features, ns["agw"]), cli)


def test_bad_arguments_are_one_line_value_errors(ran):
    _, ns = ran
    features, test_set = ns["features"], ns["test_set"]
    cases = [
        (lambda: vitool.evaluate(features.features[:, 0], test_set), "features: expected a 2-D array"),
        (lambda: vitool.evaluate(features.features[:5], test_set), "pid: expected 5 rows"),
        (lambda: vitool.evaluate(features.features.astype(str), test_set), "features: expected floats"),
        (lambda: vitool.evaluate(features.features, test_set, protocol="market"), "protocol: expected one of"),
        (lambda: vitool.evaluate(features.features, test_set, protocol="llcm"), "dataset 'sysu'"),
        (lambda: vitool.evaluate(features.features, pid=test_set.pid), "pid, modality: give them"),
        (lambda: vitool.cluster_features(features.features, features.modality, kk=3), "options: unknown kk"),
        (lambda: vitool.assign_labels(features.features, features.modality, features.pid, "magic"), "method:"),
        (lambda: vitool.load_test_set("sysu", "nowhere"), "nowhere"),
    ]
    for call, needle in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert needle in str(info.value) and "\n" not in str(info.value), (needle, str(info.value))
    nan = features.features.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="features: holds NaN"):
        vitool.evaluate(nan, test_set)
    assert vitool.evaluate(features.features, test_set, protocol="llcm", cross_dataset=True).protocol == "llcm"


def test_importing_vitool_imports_neither_torch_nor_h5py():
    code = "import sys, vitool\nassert 'torch' not in sys.modules and 'h5py' not in sys.modules\nvitool.evaluate\n"
    code += "assert 'torch' not in sys.modules\nprint(sorted(set(vitool.__all__) - set(dir(vitool))))"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "[]", res.stderr


def test_the_stages_write_what_their_commands_write(ran):
    work, ns = ran
    res = run_cli(
        "cluster", "train.h5", "-o", "cli_clusters.h5", "--k1", "10", "--eps", "0.5", "--min-samples", "2", cwd=work
    )
    assert res.returncode == 0, res.stderr
    staged, cli = vitool.read_labels(work / "clusters.h5"), vitool.read_labels(work / "cli_clusters.h5")
    np.testing.assert_array_equal(staged.label, cli.label)
    assert staged.params == cli.params and staged.attrs["diagnostics"] == cli.attrs["diagnostics"]
    assert staged.attrs["provenance"]["command"].endswith("(vitool Python API)")
    assert cli.attrs["provenance"]["command"].startswith("vitool cluster train.h5")
    cli_scores = _cli_json("evaluate", "feats.h5", "--mode", "indoor", cwd=work)
    assert ns["staged_scores"]["rank1"] == cli_scores["rank1"] and ns["staged_scores"]["trials"] == cli_scores["trials"]
    assert json.loads((work / "scores.json").read_text())["mAP"] == cli_scores["mAP"]
    linked = vitool.read_labels(work / "linked.h5")
    np.testing.assert_array_equal(linked.label, ns["assignment"].label)  # the same hungarian labels as above

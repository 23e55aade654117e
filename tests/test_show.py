"""vitool show: rank lists agree with the evaluator; both pictures are written with provenance."""

import json

import numpy as np
import pytest
from PIL import Image

from vitool.evaluation.evaluate import evaluate_features
from vitool.evaluation.protocols import ProtocolSpec
from vitool.show import rank_lists

from .conftest import random_featureset, run_cli


@pytest.mark.parametrize("protocol", ["sysu", "generic"])
def test_rank_list_aps_average_to_the_evaluators_map(protocol):
    fs = random_featureset(n_vis=60, n_ir=40, seed=3)
    spec = ProtocolSpec(protocol, trials=1)
    every = rank_lists(fs, spec, top=5, random_queries=0, best=10_000)
    expected = evaluate_features(fs, spec)
    assert len(every) == expected["trials"][0]["valid_queries"]
    assert 100 * np.mean([r.ap for r in every]) == pytest.approx(expected["mAP"], abs=1e-4)
    ranked = [r.ap for r in every]
    assert ranked == sorted(ranked, reverse=True)
    for r in every:  # the shown matches are the gallery images of the query's identity
        assert (r.match == (fs.pid[r.gallery] == fs.pid[r.query])).all()
        if protocol == "sysu" and fs.cam[r.query] == 3:
            assert not (fs.cam[r.gallery] == 2).any()  # the official exclusion applies


def test_show_commands_write_pngs_with_provenance(tmp_path, synth_root):
    root = synth_root["sysu"]
    feats = tmp_path / "f.h5"
    res = run_cli(
        "extract-features", "--dataset", "sysu", "--root", root, "--split", "test",
        "--backbone", "mobilenet_v2", "--pretrained", "none", "-o", feats,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run_cli("show", "ranks", feats, "--root", root, "-o", tmp_path / "r.png", "--top", "4", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [q["why"] for q in out["queries"]][:2] == ["best AP", "worst AP"] and len(out["queries"]) == 6
    meta = json.loads(Image.open(tmp_path / "r.png").text["Description"])
    assert meta["vitool_version"] and str(feats) in meta["inputs"]

    res = run_cli("show", "embedding", feats, "-o", tmp_path / "e.png")
    assert res.returncode == 0, res.stderr
    assert Image.open(tmp_path / "e.png").size[0] > 300

    res = run_cli("show", "ranks", feats, "--root", tmp_path, "-o", tmp_path / "x.png")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "has no image" in res.stderr
    assert not (tmp_path / "x.png").exists()
    res = run_cli("show", "embedding", feats, "-o", tmp_path / "e.png")
    assert res.returncode == 1 and "exists" in res.stderr  # never overwritten silently

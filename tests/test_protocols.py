import os
import random

import numpy as np
import pytest

from vitool.errors import VitoolError
from vitool.evaluation.evaluate import evaluate_features
from vitool.evaluation.protocols import ProtocolSpec, build_trials
from vitool.io import FeatureSet

from .conftest import featureset_of


def reference_gallery_draw(root, id_file, cam_folders, trial):
    """What the references' process_gallery_* do: global random.seed(trial), sorted ids, cams in order."""
    random.seed(trial)
    ids = [f"{int(x):04d}" for x in open(os.path.join(root, id_file)).read().splitlines()[0].split(",")]
    files = []
    for pid in sorted(ids):
        for cam in cam_folders:
            folder = os.path.join(root, cam, pid)
            if os.path.isdir(folder):
                files.append(random.choice(sorted(folder + "/" + name for name in os.listdir(folder))))
    return files


@pytest.mark.parametrize("mode, cams", [("all", ["cam1", "cam2", "cam4", "cam5"]), ("indoor", ["cam1", "cam2"])])
def test_sysu_gallery_is_bit_compatible_with_the_reference_draw(synth_root, mode, cams):
    root = synth_root["sysu"]
    fs = featureset_of("sysu", root)
    trials = build_trials(ProtocolSpec("sysu", mode=mode, trials=10), fs.path, fs.pid, fs.cam, fs.modality)
    assert [t.number for t in trials] == list(range(10))
    for t in trials:
        ours = [os.path.join(root, p) for p in fs.path[t.gallery]]
        assert ours == reference_gallery_draw(str(root), "exp/test_id.txt", cams, t.number)
        assert set(fs.cam[t.query]) <= {3, 6} and (fs.modality[t.query] == 1).all()
    assert len({tuple(t.gallery) for t in trials}) > 1  # trials really differ


def test_llcm_gallery_draw_and_directions(synth_root):
    root = synth_root["llcm"]
    fs = featureset_of("llcm", root)
    nir = [f"test_nir/cam{c}" for c in (1, 2, 4, 5, 6, 7, 8, 9)]
    vis = [f"test_vis/cam{c}" for c in range(1, 10)]
    v2i = build_trials(ProtocolSpec("llcm", direction="v2i", trials=3), fs.path, fs.pid, fs.cam, fs.modality)
    i2v = build_trials(ProtocolSpec("llcm", direction="i2v", trials=3), fs.path, fs.pid, fs.cam, fs.modality)
    for t in range(3):
        assert [os.path.join(root, p) for p in fs.path[v2i[t].gallery]] == reference_gallery_draw(
            str(root), "idx/test_id.txt", nir, t
        )
        assert [os.path.join(root, p) for p in fs.path[i2v[t].gallery]] == reference_gallery_draw(
            str(root), "idx/test_id.txt", vis, t
        )
        assert (fs.modality[v2i[t].query] == 0).all() and len(v2i[t].query) == (fs.modality == 0).sum()
    swap = build_trials(
        ProtocolSpec("llcm", direction="v2i", trials=1, deen_swap=True), fs.path, fs.pid, fs.cam, fs.modality
    )[0]
    np.testing.assert_array_equal(swap.query, v2i[0].gallery)  # DEEN: sampled NIR images become the probes


def test_regdb_directions_swap_query_and_gallery(synth_root):
    fs = featureset_of("regdb", synth_root["regdb"], trial=3)
    (v2i,) = build_trials(ProtocolSpec("regdb"), fs.path, fs.pid, fs.cam, fs.modality)
    (i2v,) = build_trials(ProtocolSpec("regdb", direction="i2v"), fs.path, fs.pid, fs.cam, fs.modality)
    np.testing.assert_array_equal(v2i.query, i2v.gallery)
    assert (fs.modality[v2i.query] == 0).all() and v2i.exclusion == "none" and not v2i.identity_cmc


def test_generic_protocol_works_without_cameras():
    rng = np.random.default_rng(0)
    pid = np.repeat(np.arange(5), 4)
    modality = np.tile([0, 0, 1, 1], 5).astype(np.uint8)
    base = rng.normal(size=(5, 16))
    fs = FeatureSet(
        features=(base[pid] + 0.01 * rng.normal(size=(20, 16))).astype(np.float32),
        path=np.array([f"{i}.png" for i in range(20)], dtype=object),
        pid=pid,
        cam=np.full(20, -1),
        modality=modality,
    )
    res = evaluate_features(fs, ProtocolSpec("generic"))
    assert res["rank1"] == 100.0 and res["mAP"] == pytest.approx(100.0)
    assert res["trials"][0]["queries"] == 10 and res["trials"][0]["gallery"] == 10


def test_errors_name_the_problem(synth_root):
    fs = featureset_of("regdb", synth_root["regdb"])
    with pytest.raises(VitoolError, match="empty query set"):
        evaluate_features(fs, ProtocolSpec("sysu"))  # RegDB cameras are 1 and 2: no cam3/cam6 queries
    fs.pid[fs.modality == 1] += 1000
    with pytest.raises(VitoolError, match="no query identity appears in the gallery"):
        evaluate_features(fs, ProtocolSpec("regdb"))
    with pytest.raises(VitoolError, match="infrared->visible"):
        build_trials(ProtocolSpec("sysu", direction="v2i"), fs.path, fs.pid, fs.cam, fs.modality)

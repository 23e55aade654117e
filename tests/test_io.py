import h5py
import numpy as np
import pytest

from vitool.errors import VitoolError
from vitool.io import (
    LabelSet,
    align_labels,
    make_provenance,
    read_features,
    read_labels,
    summarise,
    write_features,
    write_labels,
)

from .conftest import random_featureset


def test_features_roundtrip_keeps_every_field(tmp_path):
    fs = random_featureset()
    fs.features_pre_bn = fs.features * 2
    fs.extra["expert_visible"] = np.ones((3, 8), np.float32)
    write_features(tmp_path / "f.h5", fs, make_provenance({"a": 1}, seed=3))
    back = read_features(tmp_path / "f.h5")
    np.testing.assert_array_equal(back.features, fs.features)
    np.testing.assert_array_equal(back.features_pre_bn, fs.features_pre_bn)
    assert back.path.tolist() == fs.path.tolist()
    np.testing.assert_array_equal(back.pid, fs.pid)
    np.testing.assert_array_equal(back.cam, fs.cam)
    assert back.modality.dtype == np.uint8
    assert back.attrs["provenance"]["config"] == {"a": 1} and back.attrs["provenance"]["seed"] == 3
    assert back.extra["expert_visible"].shape == (3, 8)
    with h5py.File(tmp_path / "f.h5") as h:
        assert h.attrs["vitool_format"] == "features" and int(h.attrs["vitool_version"]) == 1
        assert h5py.check_string_dtype(h["path"].dtype).encoding == "utf-8"


def test_labels_roundtrip_and_join_by_path(tmp_path):
    fs = random_featureset()
    order = np.random.default_rng(0).permutation(len(fs))
    ls = LabelSet(
        path=fs.path[order],
        modality=fs.modality[order],
        label=np.arange(len(fs))[order] * 7 - 3,
        method="test",
        params={"eps": 0.6},
        intra_label=np.zeros(len(fs), np.int64),
    )
    write_labels(tmp_path / "l.h5", ls, make_provenance({}))
    back = read_labels(tmp_path / "l.h5")
    assert back.method == "test" and back.params == {"eps": 0.6}
    index = align_labels(fs, back, tmp_path / "l.h5")
    np.testing.assert_array_equal(back.label[index], np.arange(len(fs)) * 7 - 3)
    assert summarise(tmp_path / "l.h5")["kind"] == "labels"


def test_reader_accepts_any_integer_version_dtype_and_no_provenance(tmp_path):
    fs = random_featureset()
    write_features(tmp_path / "f.h5", fs, {})
    with h5py.File(tmp_path / "f.h5", "a") as h:
        h.attrs["vitool_version"] = np.uint8(1)
        del h.attrs["provenance"]
    assert len(read_features(tmp_path / "f.h5")) == len(fs)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h: h.attrs.__setitem__("vitool_version", 2), "newer than this vitool"),
        (lambda h: h.attrs.__delitem__("vitool_format"), "not a vitool stage file"),
        (lambda h: h.__delitem__("pid"), "required dataset 'pid'"),
        (lambda h: (h.__delitem__("cam"), h.create_dataset("cam", data=np.zeros(3, np.int64))), "shape (3,)"),
        (lambda h: h["features"].__setitem__((0, 0), np.nan), "NaN"),
        (lambda h: (h.__delitem__("pid"), h.create_dataset("pid", data=np.zeros(70, np.float32))), "dtype float32"),
    ],
)
def test_bad_files_are_rejected_with_the_problem(tmp_path, mutate, message):
    write_features(tmp_path / "f.h5", random_featureset(), {})
    with h5py.File(tmp_path / "f.h5", "a") as h:
        mutate(h)
    with pytest.raises(VitoolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_features(tmp_path / "f.h5")


def test_not_hdf5_and_wrong_kind(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(VitoolError, match="not a readable HDF5"):
        read_features(tmp_path / "x.h5")
    write_features(tmp_path / "f.h5", random_featureset(), {})
    with pytest.raises(VitoolError, match="is a features file"):
        read_labels(tmp_path / "f.h5")


def test_writes_refuse_to_overwrite_and_leave_nothing_partial(tmp_path):
    fs = random_featureset()
    write_features(tmp_path / "f.h5", fs, {})
    before = (tmp_path / "f.h5").read_bytes()
    with pytest.raises(VitoolError, match="already exists"):
        write_features(tmp_path / "f.h5", fs, {})
    assert (tmp_path / "f.h5").read_bytes() == before
    fs.features[0, 0] = np.nan  # invalid content: nothing may be written
    with pytest.raises(VitoolError):
        write_features(tmp_path / "g.h5", fs, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.h5"]


def test_embedding_names_a_missing_dataset():
    fs = random_featureset()
    assert fs.embedding("features", "f.h5") is fs.features
    with pytest.raises(VitoolError, match="f.h5: has no dataset 'features_pre_bn'"):
        fs.embedding("features_pre_bn", "f.h5")
    with pytest.raises(VitoolError, match="has no dataset 'logits'"):
        fs.embedding("logits", "f.h5")


def test_provenance_names_the_machine_in_plain_types_a_safe_load_accepts(tmp_path):
    """Checkpoints carry provenance and load with weights_only=True: no torch object may hide in it."""
    import json

    import torch

    from vitool.io import make_provenance

    made = make_provenance({"seed": 0}, seed=0)
    assert made["machine"]["cores"] >= 1 and type(made["machine"]["torch"]) is str
    json.dumps(made)
    torch.save({"provenance": made}, tmp_path / "c.pt")
    assert torch.load(tmp_path / "c.pt", weights_only=True)["provenance"] == made

import dataclasses
import hashlib
import shutil

import numpy as np
import pytest
from PIL import Image

from vitool.data.datasets import load_split
from vitool.data.synth import SynthConfig, generate
from vitool.errors import VitoolError


def tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_synth_is_deterministic_by_seed(tmp_path):
    config = SynthConfig("regdb", train_ids=3, test_ids=3, images=1, seed=5)
    generate(tmp_path / "a", config)
    generate(tmp_path / "b", config)
    generate(tmp_path / "c", SynthConfig("regdb", train_ids=3, test_ids=3, images=1, seed=6))
    assert tree_digest(tmp_path / "a") == tree_digest(tmp_path / "b") != tree_digest(tmp_path / "c")


def test_synth_ir_material_changes_only_infrared_images(tmp_path):
    """The modality-gap knob reshades infrared garments and leaves every visible image as it was."""
    base = SynthConfig("regdb", train_ids=2, test_ids=2, images=1, seed=3)
    generate(tmp_path / "half", base)
    generate(tmp_path / "dye", dataclasses.replace(base, ir_material=0.0))
    assert tree_digest(tmp_path / "half" / "Visible") == tree_digest(tmp_path / "dye" / "Visible")
    assert tree_digest(tmp_path / "half" / "Thermal") != tree_digest(tmp_path / "dye" / "Thermal")
    with pytest.raises(VitoolError, match="ir-material"):
        generate(tmp_path / "bad", dataclasses.replace(base, ir_material=1.5))


def test_synth_options_are_recorded_and_checked(tmp_path):
    import json

    config = SynthConfig("sysu", 2, 2, 1, seed=1, fill=0.8, infrared="thermal", material_look=0.5)
    generate(tmp_path / "d", config)
    marker = json.loads((tmp_path / "d" / "vitool-synth.json").read_text())
    assert marker["generator"] == "vitool synth 2" and marker["options"] == dataclasses.asdict(config)
    bads = [(dict(fill=1.5), "--fill"), (dict(infrared="x"), "--infrared"), (dict(material_look=-1), "look")]
    for bad, flag in [*bads, (dict(ir_degrade=5), "--ir-degrade"), (dict(ir_contrast=-1), "--ir-contrast")]:
        with pytest.raises(VitoolError, match=flag):
            generate(tmp_path / "bad", dataclasses.replace(config, **bad))


def _person_box(fill: float) -> tuple[float, float]:
    """Height and width share of the crop the person's parts cover, over a few poses."""
    from vitool.data import synth

    camera = synth._cameras("sysu", 0)[0]
    person = synth.make_identity(np.random.default_rng(0))
    sizes = []
    for k in range(6):
        parts = synth.render_geometry(person, np.random.default_rng(k), camera, fill).parts
        rows, cols = np.flatnonzero((parts != synth.BG).any(1)), np.flatnonzero((parts != synth.BG).any(0))
        sizes.append(((rows[-1] - rows[0] + 1) / synth.H, (cols[-1] - cols[0] + 1) / synth.W))
    return tuple(np.mean(sizes, axis=0))


def test_fill_frames_the_person_as_a_detector_box_does():
    tall, wide = _person_box(0.95)
    loose_tall, loose_wide = _person_box(0.0)
    assert 0.9 <= tall <= 1.0 and tall > loose_tall + 0.05
    assert wide > loose_wide * 1.3


def test_near_infrared_hides_the_dye_and_thermal_shows_warm_skin():
    """Two people who differ only in their top's dye look alike in near-infrared (ir_material 1) and not
    in colour; in thermal, skin is the warmest part."""
    from vitool.data import synth
    from vitool.modality import INFRARED, VISIBLE

    cams = {c.modality: c for c in synth._cameras("sysu", 0)}
    base = synth.make_identity(np.random.default_rng(4), ir_material=1.0)
    redyed = dataclasses.replace(base, colours=base.colours | {synth.TOP: np.array([0.05, 0.9, 0.1])})
    geo = synth.render_geometry(base, np.random.default_rng(1), cams[VISIBLE])
    top = geo.parts == synth.TOP

    def shaded(person, modality, infrared="nir"):
        img = synth.shade(person, geo, cams[modality], np.random.default_rng(2), infrared)
        return np.asarray(img, dtype=np.float32)[top].mean(0)

    assert np.abs(shaded(base, VISIBLE) - shaded(redyed, VISIBLE)).max() > 30  # a visible camera sees the dye
    assert np.abs(shaded(base, INFRARED) - shaded(redyed, INFRARED)).max() < 1  # near-infrared does not
    thermal = synth.shade(base, geo, cams[INFRARED], np.random.default_rng(2), "thermal")
    grey = np.asarray(thermal, dtype=np.float32)[..., 0]
    skin = grey[geo.parts == synth.SKIN].mean()
    assert skin > grey[geo.parts == synth.BG].mean() + 20 and skin > grey[top].mean()


def test_synth_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(VitoolError, match="not an empty folder"):
        generate(tmp_path / "x", SynthConfig("sysu", 2, 2, 1))
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_sysu_layout_and_loader(synth_root):
    root = synth_root["sysu"]
    train, test = load_split("sysu", root, "train"), load_split("sysu", root, "test")
    ids = {int(i) for name in ("train", "val") for i in (root / "exp" / f"{name}_id.txt").read_text().split(",")}
    assert {s.pid for s in train} == ids and not ids & {s.pid for s in test}
    for s in train + test:
        assert s.modality == (1 if s.cam in (3, 6) else 0)
        assert s.path == f"cam{s.cam}/{s.pid:04d}/{s.path.rsplit('/', 1)[1]}"
    ir = Image.open(root / next(s.path for s in test if s.modality == 1))
    arr = np.asarray(ir)
    assert arr.shape == (128, 64, 3)  # infrared stored as three channels, like SYSU's JPEGs
    assert np.abs(arr[..., 0].astype(int) - arr[..., 2]).max() <= 8  # ... that are (JPEG-)grey


def test_regdb_trials_are_different_splits(synth_root):
    root = synth_root["regdb"]
    t1, t2 = load_split("regdb", root, "train", 1), load_split("regdb", root, "train", 2)
    assert {s.path for s in t1} != {s.path for s in t2}
    assert sorted({s.pid for s in t1}) == list(range(len({s.pid for s in t1})))  # labels 0..n-1, as idx/ has
    assert {s.cam for s in t1 if s.modality == 0} == {1} and {s.cam for s in t1 if s.modality == 1} == {2}


def test_llcm_loader_parses_cameras_and_skips_nir_cam3(synth_root):
    train, test = load_split("llcm", synth_root["llcm"], "train"), load_split("llcm", synth_root["llcm"], "test")
    assert all(f"cam{s.cam}/" in s.path for s in train + test)
    assert 3 not in {s.cam for s in test if s.modality == 1}


def test_manifest_csv(tmp_path, synth_root):
    samples = load_split("sysu", synth_root["sysu"], "test")[:6]
    lines = ["path,pid,cam,modality,split"] + [
        f"{synth_root['sysu'] / s.path},{s.pid},,{'infrared' if s.modality else 'visible'},test" for s in samples
    ]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    loaded = load_split("manifest", tmp_path / "m.csv", "test")
    assert [s.pid for s in loaded] == [s.pid for s in samples] and {s.cam for s in loaded} == {-1}


def test_missing_parts_of_a_root_are_named(tmp_path, synth_root):
    root = tmp_path / "sysu"
    shutil.copytree(synth_root["sysu"], root)
    (root / "exp" / "test_id.txt").unlink()
    with pytest.raises(VitoolError, match="missing exp/test_id.txt"):
        load_split("sysu", root, "test")
    with pytest.raises(VitoolError, match="not a RegDB root"):
        load_split("regdb", root, "test")
    with pytest.raises(VitoolError, match="out of range"):
        load_split("regdb", synth_root["regdb"], "test", trial=11)


def test_channel_exchange_copies_one_of_the_images_own_channels():
    import torch

    from vitool.data.transforms import ChannelExchange

    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    torch.manual_seed(0)
    chosen = set()
    for _ in range(30):
        out = np.asarray(ChannelExchange(1.0)(image))
        assert (out == out[..., :1]).all()  # three identical channels
        matches = [c for c in range(3) if (out[..., 0] == rgb[..., c]).all()]
        assert len(matches) == 1
        chosen.add(matches[0])
    assert chosen == {0, 1, 2}  # every channel gets drawn
    assert (np.asarray(ChannelExchange(0.0)(image)) == rgb).all()

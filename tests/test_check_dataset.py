"""`vitool check-dataset`: each way the field's datasets are commonly prepared wrongly is found, in one line
naming it, with exit code 1; a faithful copy (here: vitool synth data, structure only) passes with 0."""

from __future__ import annotations

import json
import shutil

import pytest

from vitool.data.check import OFFICIAL, check_dataset
from vitool.data.synth import SYNTH_MARKER

from .conftest import run_cli


@pytest.fixture
def copy(synth_root, tmp_path):
    def make(layout: str):
        root = tmp_path / layout
        shutil.copytree(synth_root[layout], root)
        return root

    return make


def _problems(layout, root) -> list[str]:
    return check_dataset(layout, root).problems


@pytest.mark.parametrize("layout", ["sysu", "regdb", "llcm"])
def test_synthetic_copies_match_and_say_their_counts_are_their_own(layout, synth_root):
    res = run_cli("check-dataset", "--dataset", layout, "--root", synth_root[layout], "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    report = json.loads(res.stdout)
    assert report["matches"] and report["synthetic"]["layout"] == layout and report["official"] is None
    assert report["counts"]["images_checked"] > 0
    text = run_cli("check-dataset", "--dataset", layout, "--root", synth_root[layout]).stdout
    assert "synthetic data" in text and "matches the official structure" in text


def test_without_the_synth_marker_the_official_counts_are_checked(copy):
    root = copy("sysu")
    (root / SYNTH_MARKER).unlink()
    res = run_cli("check-dataset", "--dataset", "sysu", "--root", root)
    assert res.returncode == 1
    for name in ("train visible images", "train infrared images", "test infrared queries", "test ids"):
        assert name in res.stdout
    assert "the official release has 22,258" in res.stdout and "has 11,909" in res.stdout and "has 3,803" in res.stdout
    assert OFFICIAL["sysu"]["train_ids"] + OFFICIAL["sysu"]["val_ids"] == 395
    assert OFFICIAL["llcm"]["train_visible_images"] + OFFICIAL["llcm"]["train_infrared_images"] == 30921
    total = sum(v for k, v in OFFICIAL["llcm"].items() if k.endswith("images"))
    assert total == 46767  # the LLCM release's 46,767 boxes


def test_sysu_broken_layouts_are_each_named(copy):
    root = copy("sysu")
    shutil.rmtree(root / "cam2")
    (root / "cam7").mkdir()
    train = (root / "exp/train_id.txt").read_text().strip().split(",")
    test = (root / "exp/test_id.txt").read_text().strip().split(",")
    (root / "exp/test_id.txt").write_text(",".join(test[1:] + train[:2]) + "\n")  # another split's test ids
    pid = int(test[1])
    for cam in (3, 6):
        shutil.rmtree(root / f"cam{cam}" / f"{pid:04d}", ignore_errors=True)  # an identity with no query
    broken = next((root / "cam1").rglob("*.jpg"))
    broken.write_bytes(b"not a jpeg")
    problems = "\n".join(_problems("sysu", root))
    assert "missing camera folder cam2" in problems
    assert "extra camera folder cam7" in problems
    assert "2 identities are in both exp/train_id.txt and exp/test_id.txt" in problems
    assert "identities of exp/test_id.txt in the infrared cameras 3, 6 (no query)" in problems
    assert "1 images do not decode" in problems and broken.name in problems


def test_sysu_swapped_modalities_are_found(copy):
    root = copy("sysu")
    (root / "cam1").rename(root / "tmp")
    (root / "cam3").rename(root / "cam1")
    (root / "tmp").rename(root / "cam3")
    problems = _problems("sysu", root)
    assert any(p.startswith("cam3 holds colour images") for p in problems), problems
    assert any(p.startswith("cam1 holds grey images") for p in problems), problems


def test_regdb_idx_files_of_another_trial_are_found(copy):
    root = copy("regdb")
    shutil.copy(root / "idx/train_visible_2.txt", root / "idx/train_visible_1.txt")
    (root / "idx/test_thermal_4.txt").unlink()
    problems = "\n".join(_problems("regdb", root))
    assert "idx/train_visible_1.txt and idx/train_thermal_1.txt list different identities" in problems
    assert "train_visible_2.txt is a copy of idx/train_visible_1.txt" in problems
    assert "missing idx/test_thermal_4.txt" in problems


def test_regdb_identity_with_a_missing_image_is_found(copy):
    root = copy("regdb")
    victim = sorted((root / "Thermal").iterdir())[0]
    next(victim.iterdir()).unlink()
    problems = "\n".join(_problems("regdb", root))
    assert f"Thermal: 1 identities do not have 4 images (e.g. {victim.name})" in problems
    assert "listed images do not exist" in problems


def test_llcm_swapped_query_and_gallery_folders_are_found(copy):
    root = copy("llcm")
    (root / "test_vis").rename(root / "tmp")
    (root / "test_nir").rename(root / "test_vis")
    (root / "tmp").rename(root / "test_nir")
    res = run_cli("check-dataset", "--dataset", "llcm", "--root", root)
    assert res.returncode == 1
    assert "test_nir holds colour images where infrared images belong" in res.stdout
    assert "test_vis holds grey images" in res.stdout


def test_llcm_test_ids_in_training_and_empty_identities(copy):
    root = copy("llcm")
    train_pid = next((root / "train_vis").rglob("*.jpg")).parent.name
    ids = (root / "idx/test_id.txt").read_text().strip()
    (root / "idx/test_id.txt").write_text(f"{ids},{int(train_pid)},999\n")
    problems = "\n".join(_problems("llcm", root))
    assert "1 identities are in both the training lists and idx/test_id.txt" in problems
    assert f"2 identities of idx/test_id.txt in test_vis have no image (e.g. {int(train_pid)}, 999)" in problems


def test_bad_roots_are_one_line(tmp_path):
    res = run_cli("check-dataset", "--dataset", "sysu", "--root", tmp_path / "nowhere")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "nowhere" in res.stderr
    assert run_cli("check-dataset", "--dataset", "market", "--root", tmp_path).returncode == 2

"""Dataset loaders for the official layouts of SYSU-MM01, RegDB and LLCM, and a CSV manifest.

Each loader returns the images of one split as ``Sample`` rows with paths relative to the dataset
root, so a features file names its images independently of where the dataset lives. The layouts are
those the released loaders expect (AGW's and OTLA's ``data_loader.py``, LLCM's); unlike them, vitool parses
cameras from the relative path only, so a root containing "cam" is fine.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
OFFICIAL_DATASETS = ("sysu", "regdb", "llcm")  # the licence-gated releases, in their own layouts
DATASETS = (*OFFICIAL_DATASETS, "manifest")  # and any images listed in a CSV file
SPLITS = ("train", "test")

SYSU_VISIBLE_CAMS = (1, 2, 4, 5)
SYSU_INFRARED_CAMS = (3, 6)
LLCM_VISIBLE_CAMS = tuple(range(1, 10))
LLCM_INFRARED_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)  # test_nir/cam3 is empty in the release
REGDB_CAM = {VISIBLE: 1, INFRARED: 2}  # one camera per modality, as eval_regdb numbers them


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root, "/"-separated
    pid: int
    cam: int
    modality: int


def _images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _require(root: Path, names: list[str], dataset: str, layout: str) -> None:
    if not root.is_dir():
        raise VitoolError(root, f"{dataset} root does not exist or is not a folder", "pass --root DIR")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise VitoolError(
            root, f"not a {dataset} root: missing {shown}", f"the official layout is {layout} (docs/datasets.md)"
        )


def _read_id_line(path: Path) -> list[int]:
    """SYSU/LLCM split files hold one comma-separated line of integer ids."""
    text = path.read_text().strip().splitlines()
    try:
        return [int(tok) for tok in text[0].split(",") if tok.strip()] if text else []
    except ValueError:
        raise VitoolError(path, "is not one comma-separated line of integer ids", "restore the official file") from None


def _read_index(root: Path, rel: str) -> list[tuple[str, int]]:
    """RegDB/LLCM index files: one ``<relative path> <int label>`` per line."""
    rows = []
    for number, line in enumerate((root / rel).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise VitoolError(root / rel, f"line {number} is not '<path> <label>'", "restore the official file")
        rows.append((parts[0].lstrip("/"), int(parts[1])))
    return rows


def _check_exist(root: Path, samples: list[Sample], source: str) -> list[Sample]:
    for s in samples:
        if not (root / s.path).is_file():
            raise VitoolError(root / s.path, f"image listed in {source} does not exist", "check the dataset copy")
    return samples


# ------------------------------------------------------------------------------------------------ SYSU-MM01

SYSU_LAYOUT = "cam1..cam6/<pid:04d>/<img>.jpg plus exp/{train,val,test}_id.txt"


def _sysu(root: Path, split: str) -> list[Sample]:
    cams = [f"cam{c}" for c in range(1, 7)]
    _require(root, cams + ["exp/train_id.txt", "exp/val_id.txt", "exp/test_id.txt"], "SYSU-MM01", SYSU_LAYOUT)
    if split == "train":  # the references train on train + val ids (395 ids)
        ids = _read_id_line(root / "exp/train_id.txt") + _read_id_line(root / "exp/val_id.txt")
    else:
        ids = _read_id_line(root / "exp/test_id.txt")
    samples = []
    for modality, cam_list in ((VISIBLE, SYSU_VISIBLE_CAMS), (INFRARED, SYSU_INFRARED_CAMS)):
        for pid in sorted(set(ids)):
            for cam in cam_list:
                folder = root / f"cam{cam}" / f"{pid:04d}"
                if folder.is_dir():
                    samples += [Sample(f"cam{cam}/{pid:04d}/{n}", pid, cam, modality) for n in _images(folder)]
    return samples


# ---------------------------------------------------------------------------------------------------- RegDB

REGDB_LAYOUT = "Visible/<id>/*.bmp, Thermal/<id>/*.bmp and idx/{train,test}_{visible,thermal}_{1..10}.txt"


def _regdb(root: Path, split: str, trial: int) -> list[Sample]:
    if not 1 <= trial <= 10:
        raise VitoolError(None, f"--trial {trial} is out of range", "RegDB trials are 1..10")
    files = {m: f"idx/{split}_{name}_{trial}.txt" for m, name in ((VISIBLE, "visible"), (INFRARED, "thermal"))}
    _require(root, ["Visible", "Thermal", *files.values()], "RegDB", REGDB_LAYOUT)
    samples = [
        Sample(rel, label, REGDB_CAM[m], m) for m, index in files.items() for rel, label in _read_index(root, index)
    ]
    return _check_exist(root, samples, f"idx/ (trial {trial})")


# ----------------------------------------------------------------------------------------------------- LLCM

LLCM_LAYOUT = "idx/{train_vis,train_nir,test_id}.txt, test_vis/cam1..9/<pid:04d>/*, test_nir/cam{1,2,4..9}/<pid:04d>/*"


def llcm_cam(rel: str) -> int:
    """Camera digit right after the first 'cam' of the relative path (the reference's rule)."""
    match = re.search(r"cam(\d)", rel)
    if not match:
        raise VitoolError(rel, "LLCM path has no 'camN' part", "paths in idx/ must contain the camera folder")
    return int(match.group(1))


def _llcm(root: Path, split: str) -> list[Sample]:
    if split == "train":
        files = {VISIBLE: "idx/train_vis.txt", INFRARED: "idx/train_nir.txt"}
        _require(root, list(files.values()), "LLCM", LLCM_LAYOUT)
        samples = [
            Sample(rel, label, llcm_cam(rel), m)
            for m, index in files.items()
            for rel, label in _read_index(root, index)
        ]
        return _check_exist(root, samples, "idx/train_*.txt")
    _require(root, ["idx/test_id.txt", "test_vis", "test_nir"], "LLCM", LLCM_LAYOUT)
    ids = sorted(set(_read_id_line(root / "idx/test_id.txt")))
    samples = []
    for modality, folder, cams in (
        (VISIBLE, "test_vis", LLCM_VISIBLE_CAMS),
        (INFRARED, "test_nir", LLCM_INFRARED_CAMS),
    ):
        for pid in ids:
            for cam in cams:
                sub = root / folder / f"cam{cam}" / f"{pid:04d}"
                if sub.is_dir():
                    samples += [Sample(f"{folder}/cam{cam}/{pid:04d}/{n}", pid, cam, modality) for n in _images(sub)]
    return samples


# ------------------------------------------------------------------------------------------------- manifest

MODALITY_WORDS = {
    "0": VISIBLE,
    "visible": VISIBLE,
    "rgb": VISIBLE,
    "vis": VISIBLE,
    "1": INFRARED,
    "infrared": INFRARED,
    "ir": INFRARED,
    "thermal": INFRARED,
    "nir": INFRARED,
}


def _manifest(csv_path: Path, split: str) -> list[Sample]:
    if not csv_path.is_file():
        raise VitoolError(csv_path, "manifest CSV does not exist", "pass --root path/to/manifest.csv")
    samples = []
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        need = {"path", "pid", "cam", "modality", "split"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise VitoolError(csv_path, f"header must name the columns {sorted(need)}", "see docs/datasets.md")
        for line, row in enumerate(reader, 2):
            modality = MODALITY_WORDS.get(row["modality"].strip().lower())
            if modality is None:
                raise VitoolError(csv_path, f"line {line}: modality '{row['modality']}'", "use visible/infrared or 0/1")
            try:
                pid, cam = int(row["pid"]), int(row["cam"] or -1)
            except ValueError:
                raise VitoolError(
                    csv_path, f"line {line}: pid and cam must be integers", "use -1 for unknown"
                ) from None
            if row["split"].strip().lower() == split:
                samples.append(Sample(row["path"].strip(), pid, cam, modality))
    return _check_exist(csv_path.parent, samples, csv_path.name)


# ---------------------------------------------------------------------------------------------------- entry


def image_root(dataset: str, root: str | Path) -> Path:
    """The folder that sample paths are relative to (a manifest's own folder)."""
    root = Path(root)
    return root.parent if dataset == "manifest" else root


def sample_columns(samples: list[Sample]) -> dict[str, Any]:
    """The samples as the stage files' columns: ``path`` (object), ``pid`` and ``cam`` (int64), ``modality``
    (uint8), in their order."""
    import numpy as np

    return {
        "path": np.array([s.path for s in samples], dtype=object),
        "pid": np.array([s.pid for s in samples], dtype=np.int64),
        "cam": np.array([s.cam for s in samples], dtype=np.int64),
        "modality": np.array([s.modality for s in samples], dtype=np.uint8),
    }


def split_attrs(dataset: str, split: str, trial: int) -> dict[str, str | int]:
    """What a features file records of the split it holds; only RegDB's trial picks its identities."""
    return {"dataset": dataset, "split": split, "trial": trial if dataset == "regdb" else 0}


def load_split(dataset: str, root: str | Path, split: str, trial: int = 1) -> list[Sample]:
    """All images of ``split`` (train or test; test = query and gallery pools of both modalities)."""
    root = Path(root)
    if split not in SPLITS:
        raise VitoolError(None, f"unknown split '{split}'", "use train or test")
    if dataset == "sysu":
        samples = _sysu(root, split)
    elif dataset == "regdb":
        samples = _regdb(root, split, trial)
    elif dataset == "llcm":
        samples = _llcm(root, split)
    elif dataset == "manifest":
        samples = _manifest(root, split)
    else:
        raise VitoolError(None, f"unknown dataset '{dataset}'", f"use one of {', '.join(DATASETS)}")
    if not samples:
        raise VitoolError(root, f"the {split} split of this {dataset} root holds no images", "check the layout")
    return samples


def listing_sha256(samples: list[Sample], root: Path) -> str:
    """A cheap fingerprint of the images: relative paths, labels and file sizes (provenance)."""
    digest = hashlib.sha256()
    for s in samples:
        digest.update(f"{s.path}\t{s.pid}\t{s.cam}\t{s.modality}\t{(root / s.path).stat().st_size}\n".encode())
    return digest.hexdigest()


def check_images_match(fs, root: Path, where: str | Path) -> None:
    """Refuse a dataset root whose images are not the ones a features file was made from (its
    ``dataset_listing`` fingerprint): drawing its rows from other pictures would show the wrong people."""
    expected = ((fs.attrs.get("provenance") or {}).get("inputs") or {}).get("dataset_listing")
    if not expected:
        return  # a file made outside vitool's extractors carries no fingerprint
    columns = zip(fs.path, fs.pid, fs.cam, fs.modality, strict=True)
    rows = [Sample(str(p), int(i), int(c), int(m)) for p, i, c, m in columns]
    fix = "pass the dataset root the features were made from"
    try:
        found = listing_sha256(rows, root)
    except OSError as exc:
        raise VitoolError(where, f"has no image '{exc.filename}'", fix) from None
    if found != expected:
        problem = "does not hold the images the features were made from (names or sizes differ from their fingerprint)"
        raise VitoolError(where, problem, fix)

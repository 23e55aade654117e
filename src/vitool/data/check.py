"""``vitool check-dataset``: compare a user's copy of SYSU-MM01, RegDB or LLCM with the official release before
the first epoch, because a wrongly prepared dataset (a missing camera folder, the wrong ``exp/test_id.txt``,
another trial's idx files, swapped query and gallery folders) otherwise shows only as a low score hours later.

Each finding is one line. The official counts and their sources are in docs/datasets.md. Data written by
``vitool synth`` (it leaves ``vitool-synth.json``) has its own counts, so only the structure is checked there.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitool.data.datasets import (
    IMAGE_SUFFIXES,
    LLCM_INFRARED_CAMS,
    LLCM_VISIBLE_CAMS,
    SYSU_INFRARED_CAMS,
    SYSU_VISIBLE_CAMS,
    _images,
    _read_id_line,
    _read_index,
)
from vitool.data.synth import SYNTH_MARKER
from vitool.errors import VitoolError

# The official releases (docs/datasets.md gives the sources).
OFFICIAL: dict[str, dict[str, int]] = {
    "sysu": {
        "train_ids": 296,
        "val_ids": 99,
        "test_ids": 96,
        "train_visible_images": 22258,  # train + val ids, cams 1, 2, 4, 5
        "train_infrared_images": 11909,  # train + val ids, cams 3, 6
        "test_infrared_queries": 3803,  # test ids, cams 3, 6
    },
    "regdb": {"identities": 412, "images_per_identity": 10, "trial_ids": 206, "idx_lines": 2060},
    "llcm": {
        "train_ids": 713,
        "test_ids": 351,
        "train_visible_images": 16946,
        "train_infrared_images": 13975,
        "test_visible_images": 8680,
        "test_infrared_images": 7166,
    },
}
COLOUR_SAMPLE = 12  # images per camera folder looked at for colour
GREY_SPREAD = 0.03  # mean (max - min channel) / 255 below which an image counts as grey


@dataclass
class Report:
    dataset: str
    root: Path
    synthetic: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, name: str, value: int) -> None:
        """Record a count; on an official copy, one differing from the release is a problem."""
        self.counts[name] = value
        expected = OFFICIAL[self.dataset].get(name)
        if self.synthetic is None and expected is not None and value != expected:
            self.problems.append(f"{name.replace('_', ' ')}: {value:,}, the official release has {expected:,}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "matches": not self.problems,
            "synthetic": self.synthetic,
            "counts": self.counts,
            "official": None if self.synthetic else OFFICIAL[self.dataset],
            "problems": self.problems,
        }

    def lines(self) -> list[str]:
        """The report as `vitool check-dataset` prints it: what was compared, each difference, a verdict."""
        kind = "synthetic data (vitool synth): structure checked, counts are its own" if self.synthetic else ""
        counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in self.counts.items())
        verdict = "matches the official " + ("structure" if self.synthetic else "release")
        return [
            f"{self.dataset} at {self.root}: {kind or 'official counts'}; {counts}",
            *(f"  differs: {line}" for line in self.problems),
            f"{len(self.problems)} differences" if self.problems else verdict,
        ]


def _examples(items: list[Any], shown: int = 3) -> str:
    text = ", ".join(str(i) for i in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _overlap(report: Report, splits: dict[str, set[int]]) -> None:
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = sorted(splits[a] & splits[b])
            if both:
                report.problems.append(f"{len(both)} identities are in both {a} and {b} (e.g. {_examples(both)})")


def _id_files(report: Report, root: Path, files: dict[str, str]) -> dict[str, set[int]] | None:
    missing = [rel for rel in files.values() if not (root / rel).is_file()]
    for rel in missing:
        report.problems.append(f"missing {rel}")
    if missing:
        return None
    splits: dict[str, set[int]] = {}
    for rel in files.values():
        ids = _read_id_line(root / rel)
        if len(ids) != len(set(ids)):
            report.problems.append(f"{rel} lists some identities twice")
        splits[rel] = set(ids)
    _overlap(report, splits)
    return splits


def _camera_folders(
    report: Report, folder: Path, expected: tuple[int, ...], what: str, optional: tuple[int, ...] = ()
) -> None:
    """Missing and extra ``camN`` folders under ``folder`` (``optional`` ones may be there or not)."""
    if not folder.is_dir():
        report.problems.append(f"missing folder {what or '.'}")
        return
    present = {int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := re.fullmatch(r"cam(\d+)", p.name))}
    for cam in sorted(set(expected) - present):
        report.problems.append(f"missing camera folder {what}cam{cam}")
    for cam in sorted(present - set(expected) - set(optional)):
        report.problems.append(f"extra camera folder {what}cam{cam}, which the official layout does not have")


def _id_folders(root: Path, base: str, cams: tuple[int, ...], ids: set[int]) -> dict[tuple[int, int], list[str]]:
    """(pid, cam) -> image paths relative to ``root`` for the ``ids`` that have a folder."""
    found = {}
    for cam in cams:
        for pid in sorted(ids):
            folder = root / base / f"cam{cam}" / f"{pid:04d}"
            if folder.is_dir():
                found[(pid, cam)] = [f"{base}/cam{cam}/{pid:04d}/{n}".lstrip("/") for n in _images(folder)]
    return found


def _empty_ids(report: Report, ids: set[int], images: dict[tuple[int, int], list[str]], where: str) -> None:
    having = {pid for (pid, _), paths in images.items() if paths}
    empty = sorted(ids - having)
    if empty:
        report.problems.append(f"{len(empty)} identities of {where} have no image (e.g. {_examples(empty)})")


def _colour_spread(path: Path) -> float | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB").resize((32, 64)), dtype=np.float32)
    except (OSError, ValueError):
        return None
    return float((arr.max(axis=2) - arr.min(axis=2)).mean() / 255)


def _modality_looks(report: Report, root: Path, groups: dict[str, list[str]], infrared: set[str]) -> None:
    """Near-infrared and thermal images are grey; a group of colour images where infrared belongs (or grey
    ones where visible belongs) is a swapped folder or list."""
    for name, paths in groups.items():
        step = max(1, len(paths) // COLOUR_SAMPLE)
        spreads = [s for p in paths[::step][:COLOUR_SAMPLE] if (s := _colour_spread(root / p)) is not None]
        if not spreads:
            continue
        grey = float(np.median(spreads)) < GREY_SPREAD
        if name in infrared and not grey:
            report.problems.append(
                f"{name} holds colour images where infrared images belong: visible and infrared swapped?"
            )
        if name not in infrared and grey:
            report.problems.append(
                f"{name} holds grey images where visible images belong: visible and infrared swapped?"
            )


def _images_decode(
    report: Report, root: Path, paths: list[str], decode: bool, progress: Callable[[int], None] | None
) -> None:
    """Images that do not open (or, with ``decode``, do not decode) and sizes unlike a pedestrian crop."""
    from PIL import Image

    broken, wide, tiny = [], [], []
    for rel in paths:
        try:
            with Image.open(root / rel) as img:
                width, height = img.size
                if decode:
                    img.load()
        except (OSError, ValueError, Image.DecompressionBombError):
            broken.append(rel)
        else:
            if width > height:
                wide.append(f"{rel} ({width}x{height})")
            if min(width, height) < 16:
                tiny.append(f"{rel} ({width}x{height})")
        if progress:
            progress(1)
    if broken:
        report.problems.append(f"{len(broken)} images do not decode (e.g. {_examples(broken)})")
    if wide:
        report.problems.append(
            f"{len(wide)} images are wider than tall, unlike pedestrian crops (e.g. {_examples(wide)})"
        )
    if tiny:
        report.problems.append(f"{len(tiny)} images are smaller than 16 pixels on a side (e.g. {_examples(tiny)})")
    report.counts["images_checked"] = len(paths)


# --------------------------------------------------------------------------------------------------- SYSU


def _sysu(report: Report, root: Path) -> list[str]:
    all_cams = SYSU_VISIBLE_CAMS + SYSU_INFRARED_CAMS
    _camera_folders(report, root, all_cams, "")
    files = {"train": "exp/train_id.txt", "val": "exp/val_id.txt", "test": "exp/test_id.txt"}
    splits = _id_files(report, root, files)
    if splits is None:
        return []
    train, val, test = (splits[files[k]] for k in ("train", "val", "test"))
    report.count("train_ids", len(train))
    report.count("val_ids", len(val))
    report.count("test_ids", len(test))
    trainval = train | val
    images = _id_folders(root, "", all_cams, trainval | test)
    visible = {k: v for k, v in images.items() if k[1] in SYSU_VISIBLE_CAMS}
    infrared = {k: v for k, v in images.items() if k[1] in SYSU_INFRARED_CAMS}
    report.count("train_visible_images", sum(len(v) for (p, _), v in visible.items() if p in trainval))
    report.count("train_infrared_images", sum(len(v) for (p, _), v in infrared.items() if p in trainval))
    report.count("test_infrared_queries", sum(len(v) for (p, _), v in infrared.items() if p in test))
    report.count("test_visible_images", sum(len(v) for (p, _), v in visible.items() if p in test))
    _empty_ids(report, trainval, visible, "the training split in the visible cameras 1, 2, 4, 5")
    _empty_ids(report, trainval, infrared, "the training split in the infrared cameras 3, 6")
    _empty_ids(report, test, infrared, "exp/test_id.txt in the infrared cameras 3, 6 (no query)")
    _empty_ids(report, test, visible, "exp/test_id.txt in the visible cameras 1, 2, 4, 5 (no gallery)")
    groups: dict[str, list[str]] = {}
    for (_, cam), paths in sorted(images.items()):
        groups.setdefault(f"cam{cam}", []).extend(paths)
    _modality_looks(report, root, groups, {f"cam{c}" for c in SYSU_INFRARED_CAMS})
    return [p for paths in images.values() for p in paths]


# -------------------------------------------------------------------------------------------------- RegDB


def _regdb_id(rel: str) -> str:
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 else ""


def _regdb(report: Report, root: Path) -> list[str]:
    folders = {"Visible": None, "Thermal": None}
    for name in folders:
        if not (root / name).is_dir():
            report.problems.append(f"missing folder {name}")
            continue
        ids = {p.name: _images(p) for p in (root / name).iterdir() if p.is_dir()}
        folders[name] = ids
        report.count(f"{name.lower()}_identities", len(ids))
        if report.synthetic is None and len(ids) != OFFICIAL["regdb"]["identities"]:
            report.problems.append(f"{name}: {len(ids)} identity folders, the official release has 412")
        per = OFFICIAL["regdb"]["images_per_identity"] if report.synthetic is None else 2 * report.synthetic["images"]
        odd = sorted(i for i, names in ids.items() if len(names) != per)
        if odd:
            report.problems.append(f"{name}: {len(odd)} identities do not have {per} images (e.g. {_examples(odd)})")
    if folders["Visible"] is not None and folders["Thermal"] is not None:
        one_side = sorted(set(folders["Visible"]) ^ set(folders["Thermal"]))
        if one_side:
            report.problems.append(f"{len(one_side)} identities have only one modality (e.g. {_examples(one_side)})")
    texts: dict[str, str] = {}
    for trial in range(1, 11):
        ids: dict[str, set[str]] = {}
        for split in ("train", "test"):
            for modality in ("visible", "thermal"):
                rel = f"idx/{split}_{modality}_{trial}.txt"
                if not (root / rel).is_file():
                    report.problems.append(f"missing {rel}")
                    continue
                texts[rel] = (root / rel).read_text()
                rows = _read_index(root, rel)
                ids[f"{split}_{modality}"] = {_regdb_id(path) for path, _ in rows}
                absent = [path for path, _ in rows if not (root / path).is_file()]
                if absent:
                    report.problems.append(
                        f"{rel}: {len(absent)} listed images do not exist (e.g. {_examples(absent)})"
                    )
                if report.synthetic is None and len(rows) != OFFICIAL["regdb"]["idx_lines"]:
                    report.problems.append(f"{rel}: {len(rows)} lines, the official files have 2,060")
        for split in ("train", "test"):
            v, t = ids.get(f"{split}_visible"), ids.get(f"{split}_thermal")
            if v is not None and t is not None and v != t:
                report.problems.append(
                    f"idx/{split}_visible_{trial}.txt and idx/{split}_thermal_{trial}.txt list different identities: "
                    "one of them is from another trial"
                )
        train, test = ids.get("train_visible"), ids.get("test_visible")
        if train is not None and test is not None and train & test:
            report.problems.append(
                f"trial {trial}: {len(train & test)} identities are in both train and test idx files"
            )
    by_text: dict[str, str] = {}
    for rel, text in texts.items():
        kind = rel.rsplit("_", 1)[0]
        key = f"{kind}\n{text}"
        if key in by_text:
            report.problems.append(f"{rel} is a copy of {by_text[key]}: each trial has its own identity split")
        by_text.setdefault(key, rel)
    paths = []
    for name, ids in folders.items():
        for pid, names in sorted((ids or {}).items()):
            paths += [f"{name}/{pid}/{n}" for n in names]
    _modality_looks(report, root, {"Visible": [p for p in paths if p.startswith("Visible/")],
                                   "Thermal": [p for p in paths if p.startswith("Thermal/")]}, {"Thermal"})  # fmt: skip
    return paths


# --------------------------------------------------------------------------------------------------- LLCM


def _llcm_pid(rel: str) -> int | None:
    match = re.search(r"cam\d/(\d{4})/", rel)
    return int(match.group(1)) if match else None


def _llcm(report: Report, root: Path) -> list[str]:
    lists = {"visible": "idx/train_vis.txt", "infrared": "idx/train_nir.txt"}
    train_ids: dict[str, set[int]] = {}
    train_labels: set[int] = set()
    train_paths: dict[str, list[str]] = {}
    for modality, rel in lists.items():
        if not (root / rel).is_file():
            report.problems.append(f"missing {rel}")
            continue
        rows = _read_index(root, rel)
        train_paths[rel] = [path for path, _ in rows]
        train_ids[modality] = {pid for path, _ in rows if (pid := _llcm_pid(path)) is not None}
        train_labels |= {label for _, label in rows}
        report.count(f"train_{modality}_images", len(rows))
        absent = [path for path, _ in rows if not (root / path).is_file()]
        if absent:
            report.problems.append(f"{rel}: {len(absent)} listed images do not exist (e.g. {_examples(absent)})")
    if train_paths:
        report.count("train_ids", len(train_labels))
    if not (root / "idx/test_id.txt").is_file():
        report.problems.append("missing idx/test_id.txt")
        return [p for paths in train_paths.values() for p in paths]
    test = set(_read_id_line(root / "idx/test_id.txt"))
    report.count("test_ids", len(test))
    _overlap(
        report,
        {"the training lists": set().union(*train_ids.values()) if train_ids else set(), "idx/test_id.txt": test},
    )
    _camera_folders(report, root / "test_vis", LLCM_VISIBLE_CAMS, "test_vis/")
    _camera_folders(report, root / "test_nir", LLCM_INFRARED_CAMS, "test_nir/", optional=(3,))  # empty if there
    vis = _id_folders(root, "test_vis", LLCM_VISIBLE_CAMS, test)
    nir = _id_folders(root, "test_nir", LLCM_INFRARED_CAMS, test)
    report.count("test_visible_images", sum(len(v) for v in vis.values()))
    report.count("test_infrared_images", sum(len(v) for v in nir.values()))
    _empty_ids(report, test, vis, "idx/test_id.txt in test_vis")
    _empty_ids(report, test, nir, "idx/test_id.txt in test_nir")
    groups = {"test_vis": [p for v in vis.values() for p in v], "test_nir": [p for v in nir.values() for p in v]}
    groups |= {rel: paths for rel, paths in train_paths.items()}
    _modality_looks(report, root, groups, {"test_nir", lists["infrared"]})
    return [p for paths in groups.values() for p in paths]


# ---------------------------------------------------------------------------------------------------- entry

CHECKS = {"sysu": _sysu, "regdb": _regdb, "llcm": _llcm}


def _validate(dataset: str, root: Path) -> None:
    if dataset not in CHECKS:
        raise VitoolError(None, f"--dataset {dataset}", f"use one of {', '.join(CHECKS)}")
    if not root.is_dir():
        raise VitoolError(root, "does not exist or is not a folder", "pass the dataset root as --root")


def image_count(dataset: str, root: str | Path) -> int:
    """How many image files lie under ``root`` (a progress bar's total); checks the arguments first."""
    root = Path(root)
    _validate(dataset, root)
    return sum(1 for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def check_dataset(
    dataset: str, root: str | Path, decode: bool = True, progress: Callable[[int], None] | None = None
) -> Report:
    """Compare the copy at ``root`` with the official ``dataset`` ("sysu", "regdb" or "llcm")."""
    root = Path(root)
    _validate(dataset, root)
    report = Report(dataset, root)
    marker = root / SYNTH_MARKER
    if marker.is_file():
        try:
            meta = json.loads(marker.read_text())
            report.synthetic = {"generator": meta["generator"], **meta["options"]}
        except (ValueError, KeyError, TypeError):
            raise VitoolError(marker, "is not the file vitool synth writes", "remove it from a real dataset") from None
        if report.synthetic.get("layout") != dataset:
            report.problems.append(f"vitool synth wrote a {report.synthetic.get('layout')} layout here, not {dataset}")
            return report
    paths = CHECKS[dataset](report, root)
    _images_decode(report, root, sorted(set(paths)), decode, progress)
    return report

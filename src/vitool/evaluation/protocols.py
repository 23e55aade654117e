"""The literature's VI-ReID test protocols: which rows are queries and gallery, trial by trial.

* ``sysu``: infrared queries (cam3, cam6) against a visible gallery drawn per trial, all-search
  (cams 1, 2, 4, 5) or indoor (cams 1, 2); single-shot draws are bit-compatible with the references'
  ``process_gallery_sysu`` (``random.seed(trial)``, sorted ids, cameras in order, ``random.choice``
  over sorted paths); cam3 probes skip cam2; identity-level CMC.
* ``regdb``: one features file is one trial; visible->thermal or thermal->visible, nothing excluded,
  image-level CMC.
* ``llcm``: like SYSU with nine cameras, same-pid-same-cam exclusion. ``v2i`` is the unswapped
  convention (all visible queries, sampled near-infrared gallery); ``deen_swap`` reproduces DEEN's
  test.py, whose probes are the sampled near-infrared images.
* ``generic``: queries of one modality against all images of the other, Market-style exclusion, works
  without cameras (cam -1).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vitool.errors import VitoolError
from vitool.evaluation import DIRECTIONS, MODES, PROTOCOLS, SHOTS
from vitool.evaluation.metrics import Exclusion
from vitool.modality import INFRARED, VISIBLE

DEFAULT_DIRECTION = {"sysu": "i2v", "regdb": "v2i", "llcm": "i2v", "generic": "i2v"}
PROTOCOL_OF_DATASET = {"sysu": "sysu", "regdb": "regdb", "llcm": "llcm", "manifest": "generic"}
# the settings the papers report per protocol: SYSU's two gallery modes, both directions elsewhere
REPORTED = {
    "sysu": ("mode", ("all", "indoor")),
    "regdb": ("direction", ("v2i", "i2v")),
    "llcm": ("direction", ("i2v", "v2i")),
    "generic": ("direction", ("i2v",)),
}
SYSU_GALLERY_CAMS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
LLCM_CAMS = {VISIBLE: tuple(range(1, 10)), INFRARED: (1, 2, 4, 5, 6, 7, 8, 9)}
MULTI_SHOT = 10


@dataclass
class Trial:
    number: int
    query: np.ndarray  # row indices into the features file
    gallery: np.ndarray
    exclusion: Exclusion
    identity_cmc: bool


@dataclass
class ProtocolSpec:
    protocol: Literal["sysu", "regdb", "llcm", "generic"]
    mode: str = "all"
    shot: str = "single"
    direction: str | None = None
    trials: int = 10
    deen_swap: bool = False

    def resolved_direction(self) -> str:
        return self.direction or DEFAULT_DIRECTION[self.protocol]


def protocol_spec(
    protocol: str | None,
    dataset: str | None,
    mode: str = "all",
    shot: str = "single",
    direction: str | None = None,
    trials: int = 10,
    deen_swap: bool = False,
) -> ProtocolSpec:
    """The settings checked, with ``protocol`` defaulting to the one of the features' ``dataset``
    (``generic`` when none is recorded); a bad value is one line naming the setting."""
    protocol = protocol or PROTOCOL_OF_DATASET.get(str(dataset), "generic")
    for name, value, allowed in (
        ("protocol", protocol, PROTOCOLS),
        ("mode", mode, MODES),
        ("shot", shot, SHOTS),
        ("direction", direction, (None, *DIRECTIONS)),
    ):
        if value not in allowed:
            shown = ", ".join(a for a in allowed if a)
            raise VitoolError(name, f"expected one of {shown}, got {value!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise VitoolError("trials", f"expected a positive integer, got {trials!r}")
    return ProtocolSpec(protocol, mode, shot, direction, trials, deen_swap)


def check_protocol_fits(
    dataset: str | None, protocol: str, where: str, cross_dataset: bool = False, split: str | None = None
) -> None:
    """Refuse a dataset's protocol on features of another dataset: its queries, gallery cameras and
    exclusions would be drawn from the wrong cameras and still print a normal-looking score. ``generic``
    fits any file; a file without a recorded dataset is taken as it is; ``cross_dataset`` is the
    deliberate exception (the results then record it). A dataset's protocol on its train ``split`` is
    refused too: the score would read as a test score of identities the model trained on."""
    if split == "train" and protocol != "generic":
        raise VitoolError(
            where,
            f"holds the train split, which the {protocol} protocol does not score",
            "extract the test split (vitool extract-features --split test), or --protocol generic to look at it",
        )
    fits = PROTOCOL_OF_DATASET.get(str(dataset)) if dataset else None
    if cross_dataset or fits is None or protocol in (fits, "generic"):
        return
    raise VitoolError(
        where,
        f"its features are of dataset '{dataset}', which the {protocol} protocol does not fit",
        f"use --protocol {fits} or generic (or --cross-dataset for a deliberate cross-dataset evaluation)",
    )


def reported_specs(protocol: str) -> dict[str, ProtocolSpec]:
    """The protocol settings papers report, by name (e.g. {"all": ..., "indoor": ...} for SYSU)."""
    field, names = REPORTED[protocol]
    return {name: ProtocolSpec(protocol, **{field: name}) for name in names}


def draw_galleries(
    paths: np.ndarray,
    pid: np.ndarray,
    cam: np.ndarray,
    rows: np.ndarray,
    cams: tuple[int, ...],
    trials: int,
    shot: str,
) -> list[np.ndarray]:
    """Per trial, per (identity, camera) pick 1 (single-shot) or up to 10 (multi-shot) images.

    Trial t's RNG stream equals ``random.seed(t)`` followed by one ``random.choice`` per existing
    (id, cam) folder in sorted-id, camera-list order, over that folder's sorted file paths, as the
    references' process_gallery_sysu / process_gallery_llcm draw it.
    """
    groups: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
    for r, p, c, path in zip(rows.tolist(), pid[rows].tolist(), cam[rows].tolist(), paths[rows], strict=True):
        groups[(p, c)].append((path, r))
    ordered = [
        [r for _, r in sorted(groups[(p, c)])] for p in sorted({k[0] for k in groups}) for c in cams if (p, c) in groups
    ]
    galleries = []
    for t in range(trials):
        rng = random.Random(t)
        if shot == "single":
            chosen = [rng.choice(group) for group in ordered]
        else:  # no Python reference exists for multi-shot; 10 draws without replacement per folder
            chosen = [r for group in ordered for r in rng.sample(group, min(MULTI_SHOT, len(group)))]
        galleries.append(np.asarray(chosen, dtype=np.int64))
    return galleries


def build_trials(spec: ProtocolSpec, paths, pid, cam, modality, where: str = "features") -> list[Trial]:
    """Split a features file's rows into per-trial query and gallery sets."""
    direction = spec.resolved_direction()
    if direction not in ("v2i", "i2v"):
        raise VitoolError(None, f"--direction {direction}", "use v2i or i2v")
    q_mod, g_mod = (VISIBLE, INFRARED) if direction == "v2i" else (INFRARED, VISIBLE)
    vis, ir = np.flatnonzero(modality == VISIBLE), np.flatnonzero(modality == INFRARED)
    rows_of = {VISIBLE: vis, INFRARED: ir}
    if spec.protocol == "sysu":
        if direction != "i2v":
            raise VitoolError(None, "SYSU-MM01's protocol is infrared->visible", "drop --direction or use i2v")
        if spec.mode not in SYSU_GALLERY_CAMS:
            raise VitoolError(None, f"--mode {spec.mode}", "use all or indoor")
        query = ir[np.isin(cam[ir], (3, 6))]
        pool = vis[np.isin(cam[vis], SYSU_GALLERY_CAMS[spec.mode])]
        _nonempty(query, pool, where, "infrared cam3/cam6 images", f"visible cams {SYSU_GALLERY_CAMS[spec.mode]}")
        galleries = draw_galleries(paths, pid, cam, pool, SYSU_GALLERY_CAMS[spec.mode], spec.trials, spec.shot)
        return [Trial(t, query, gallery, "sysu", True) for t, gallery in enumerate(galleries)]
    if spec.protocol == "llcm":
        swap = spec.deen_swap and direction == "v2i"
        query_all, pool = rows_of[q_mod], rows_of[g_mod]
        _nonempty(query_all, pool, where, f"{_name(q_mod)} images", f"{_name(g_mod)} images")
        trials = []
        for t, gallery in enumerate(draw_galleries(paths, pid, cam, pool, LLCM_CAMS[g_mod], spec.trials, spec.shot)):
            query = query_all
            if swap:  # DEEN's test.py: the sampled near-infrared images become the probes
                query, gallery = gallery, query_all
            trials.append(Trial(t, query, gallery, "same_pid_cam", True))
        return trials
    if spec.protocol in ("regdb", "generic"):
        query, gallery = rows_of[q_mod], rows_of[g_mod]
        _nonempty(query, gallery, where, f"{_name(q_mod)} images", f"{_name(g_mod)} images")
        exclusion: Exclusion = "none" if spec.protocol == "regdb" else "same_pid_cam"
        return [Trial(0, query, gallery, exclusion, False)]
    raise VitoolError(None, f"unknown protocol '{spec.protocol}'", f"use one of {', '.join(PROTOCOLS)}")


def _name(modality: int) -> str:
    return "visible" if modality == VISIBLE else "infrared"


def _nonempty(query: np.ndarray, gallery: np.ndarray, where: str, q_what: str, g_what: str) -> None:
    if len(query) == 0:
        raise VitoolError(where, f"empty query set: no {q_what}", "check --protocol/--direction against the file")
    if len(gallery) == 0:
        raise VitoolError(where, f"empty gallery: no {g_what}", "check --protocol/--mode against the file")

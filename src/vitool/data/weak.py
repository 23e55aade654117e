"""Weak labels: identity labels inside each modality, with no cross-modal link (the setting of
Zhang et al., ICCV 2025, arXiv 2507.12942). Each modality's identities are renumbered by its own random
permutation, so visible id k and infrared id k are, in general, different people; the true identities stay
only in the dataset's ``pid`` for diagnostics."""

from __future__ import annotations

import numpy as np

from vitool.modality import INFRARED, VISIBLE


def weak_labels(pid: np.ndarray, modality: np.ndarray, seed: int = 0, keep_infrared: float = 1.0) -> np.ndarray:
    """Per row, its identity renumbered by a seeded permutation within its modality: visible ids
    0..C_v-1, infrared ids C_v..C_v+C_r-1 (distinct across modalities, as labels files keep them); -1 stays.

    ``keep_infrared`` < 1 keeps the labels of only that share of the infrared identities (chosen by the
    seed), so some identities are labelled in one modality only and the id counts differ."""
    rng = np.random.default_rng(seed)
    out = np.full(len(pid), -1, dtype=np.int64)
    offset = 0
    for m in (VISIBLE, INFRARED):
        rows = np.flatnonzero((modality == m) & (pid >= 0))
        ids = np.unique(pid[rows])
        if m == INFRARED and keep_infrared < 1.0:
            ids = np.sort(rng.choice(ids, max(1, round(keep_infrared * len(ids))), replace=False))
            rows = rows[np.isin(pid[rows], ids)]
        out[rows] = offset + rng.permutation(len(ids))[np.searchsorted(ids, pid[rows])]
        offset += len(ids)
    return out

"""Pseudo-label quality against hidden ground truth: what tells whether association has saturated.

Only rows with a known identity (pid >= 0) count. Outliers (label -1) are scored as singletons, so
discarding samples never looks like precision. Metrics that are undefined (no pid, one modality)
are left out rather than reported as zero.
"""

from __future__ import annotations

import numpy as np

from vitool.modality import INFRARED, VISIBLE


def _with_singletons(label: np.ndarray) -> np.ndarray:
    out = label.copy()
    outliers = out < 0
    out[outliers] = out.max(initial=0) + 1 + np.arange(int(outliers.sum()))
    return out


def majority_identity(labels: np.ndarray, pids: np.ndarray) -> dict[int, int]:
    """Label -> its most frequent ground-truth identity."""
    owner: dict[int, int] = {}
    for lab in np.unique(labels):
        ids, counts = np.unique(pids[labels == lab], return_counts=True)
        owner[int(lab)] = int(ids[np.argmax(counts)])
    return owner


def cross_modal_accuracy(
    pid: np.ndarray, modality: np.ndarray, label: np.ndarray, space_modality: int = VISIBLE
) -> float | None:
    """Share of the other modality's samples whose label is a class of the ``space_modality`` modality
    whose majority identity is theirs (unlabelled samples count as misses)."""
    own = (modality == space_modality) & (label >= 0)
    other = modality == (INFRARED if space_modality == VISIBLE else VISIBLE)
    if not own.any() or not other.any():
        return None
    owner = majority_identity(label[own], pid[own])
    hits = [owner.get(int(lab)) == int(p) for lab, p in zip(label[other], pid[other], strict=True)]
    return float(np.mean(hits))


def cross_modal_reach(pid: np.ndarray, modality: np.ndarray, label: np.ndarray, space_modality: int) -> float | None:
    """Share of the other modality's samples whose identity is the majority identity of some class of the
    ``space_modality`` modality: the most ``cross_modal_accuracy`` can be with these classes, whatever the
    association (few clusters for many people cap it)."""
    own = (modality == space_modality) & (label >= 0)
    other = modality != space_modality
    if not own.any() or not other.any():
        return None
    owners = set(majority_identity(label[own], pid[own]).values())
    return float(np.isin(pid[other], list(owners)).mean())


def label_diagnostics(pid: np.ndarray, modality: np.ndarray, label: np.ndarray) -> dict[str, float | int]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import pair_confusion_matrix

    out: dict[str, float | int] = {
        "rows": int(len(label)),
        "labels": int(len(np.unique(label[label >= 0]))),
        "outlier_ratio": float((label < 0).mean()) if len(label) else 0.0,
    }
    for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
        rows = modality == m
        if rows.any():
            out[f"{name}_labels"] = int(len(np.unique(label[rows & (label >= 0)])))
    known = pid >= 0
    if known.sum() < 2:
        return out
    truth, pred = pid[known], _with_singletons(label[known])
    out["ari"] = float(adjusted_rand_score(truth, pred))
    out["nmi"] = float(normalized_mutual_info_score(truth, pred))
    (_, fp), (fn, tp) = pair_confusion_matrix(truth, pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    out["pair_precision"] = float(precision)
    out["pair_recall"] = float(recall)
    out["pair_f1"] = float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0
    for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):  # clustering quality inside a modality
        rows = known & (modality == m)
        if rows.sum() >= 2:
            out[f"{name}_ari"] = float(adjusted_rand_score(pid[rows], _with_singletons(label[rows])))
    accuracy = cross_modal_accuracy(pid[known], modality[known], label[known])
    if accuracy is not None:
        out["cross_modal_accuracy"] = accuracy
    return out


def match_diagnostics(pid, modality, intra, tables: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, int]]:
    """Precision and coverage (rates) and the number (counts) of each kind of identity pair
    (``pairs_<kind>``: visible id, infrared id, ...).

    A pair is right when the majority identities of its two ids agree; coverage is the share of
    visible ids that the kind pairs.
    """
    known = pid >= 0
    vis, ir = known & (modality == VISIBLE) & (intra >= 0), known & (modality == INFRARED) & (intra >= 0)
    if not vis.any() or not ir.any():
        return {}, {}
    v_owner = majority_identity(intra[vis], pid[vis])
    r_owner = majority_identity(intra[ir], pid[ir])
    rates: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, pairs in tables.items():
        if not name.startswith("pairs_"):
            continue
        kind = name.removeprefix("pairs_")
        right = [v_owner.get(int(v)) == r_owner.get(int(r)) for v, r in pairs[:, :2]]
        counts[f"{kind}_pairs"] = int(len(pairs))
        if len(pairs):
            rates[f"{kind}_precision"] = float(np.mean(right))
        rates[f"{kind}_coverage"] = float(len(np.unique(pairs[:, 0])) / max(len(v_owner), 1))
    return rates, counts

"""Cross-modal label association behind one interface.

Each method takes a features file's arrays and per-modality labels, and returns an ``Assignment``:
one label space for both modalities in ``label`` (-1 = none), refined per-modality labels in
``intra_label``, optional soft labels, match tables and diagnostics. ``vitool assign-labels`` and the
training engine call ``assign`` in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where it runs: the command line reads METHODS without it
    import numpy as np

from vitool.errors import VitoolError
from vitool.modality import INFRARED, MODALITY_NAMES, VISIBLE, l2_normalise

METHODS = {  # each association and the settings it reads, with their defaults (vitool assign-labels)
    "ot": {"lam": 25.0, "temperature": 0.1, "cost": "auto"},
    "mult": {"space": "visible", "alpha": 0.2, "device": "auto"},
    "experts": {"sharpen": 3.0},
    "hungarian": {},
}


@dataclass
class Assignment:
    label: np.ndarray
    intra_label: np.ndarray
    confidence: np.ndarray | None = None
    soft: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. soft_classes, match tables
    attrs: dict[str, Any] = field(default_factory=dict)  # solver facts: iterations, pairs, ...


def class_means(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted class ids, mean feature of each class); label -1 is ignored. One sparse product."""
    import numpy as np
    import scipy.sparse as sp

    keep = np.flatnonzero(labels >= 0)
    classes, inverse = np.unique(labels[keep], return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes)).astype(np.float32)
    members = sp.csr_matrix((1.0 / counts[inverse], (inverse, keep)), shape=(len(classes), len(labels)))
    return classes, np.asarray(members @ features, dtype=np.float32)


def class_centres(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted class ids, L2-normalised mean of the L2-normalised features of each class); -1 ignored."""
    classes, means = class_means(l2_normalise(features), labels)
    return classes, l2_normalise(means)


def check_modalities(
    modality: np.ndarray, intra: np.ndarray, where: str, labelled: tuple[int, ...] = (VISIBLE, INFRARED)
) -> None:
    """Both modalities present, and some labelled rows in each of the ``labelled`` modalities."""
    for m, name in MODALITY_NAMES.items():
        rows = modality == m
        if not rows.any():
            raise VitoolError(where, f"has no {name} samples", "association needs both modalities")
        if m in labelled and not (intra[rows] >= 0).any():
            raise VitoolError(where, f"every {name} sample is an outlier (label -1)", "re-cluster, e.g. a larger --eps")


def assign(
    method: str,
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    where: str = "labels",
    probs: np.ndarray | None = None,
    experts: dict[str, np.ndarray] | None = None,
    **params: Any,
) -> Assignment:
    """Run one association method on per-modality labels ``intra`` (-1 = outlier).

    ``probs`` (for ot) and ``experts`` (the expert classifiers, for experts) come from the features
    file when it has them.
    """
    check_modalities(modality, intra, where, labelled=(VISIBLE,) if method == "ot" else (VISIBLE, INFRARED))
    if method == "experts":
        from vitool.assign.experts import assign_experts

        return assign_experts(features, modality, intra, experts=experts, where=where, **params)
    if method == "ot":
        from vitool.assign.ot import assign_ot

        return assign_ot(features, modality, intra, probs=probs, where=where, **params)
    if method == "mult":
        from vitool.assign.mult import assign_mult

        return assign_mult(features, modality, intra, **params)
    if method == "hungarian":
        from vitool.assign.hungarian import assign_hungarian

        return assign_hungarian(features, modality, intra, **params)
    raise VitoolError(None, f"unknown association method '{method}'", f"use one of {', '.join(METHODS)}")

"""The labels a label-efficient method starts from: ground truth, or a labels file joined by image path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitool.data.datasets import Sample
from vitool.errors import VitoolError
from vitool.methods.contract import RunSetup
from vitool.modality import VISIBLE


def visible_training_labels(setup: RunSetup, samples: list[Sample]) -> tuple[np.ndarray, str]:
    """Per training row, the visible label a label-efficient method starts from (-1 elsewhere), and where
    it came from: the ground-truth identities (semi-supervised), or ``setup.labels`` (a labels file, e.g.
    `vitool cluster` output: unsupervised). Visible classes with one member are dropped, as OTLA does."""
    modality = np.array([s.modality for s in samples])
    if not setup.labels:
        labels = np.array([s.pid for s in samples], dtype=np.int64)
        source = "ground truth"
    else:
        labels = labels_from_file(Path(setup.labels), samples)
        source = str(setup.labels)
    labels = np.where(modality == VISIBLE, labels, -1)
    classes, counts = np.unique(labels[labels >= 0], return_counts=True)
    labels[np.isin(labels, classes[counts < 2])] = -1
    if not (labels >= 0).any():
        raise VitoolError(setup.labels or None, "no visible class has two or more images", "re-cluster")
    return labels, source


def labels_from_file(path: Path, samples: list[Sample], field: str = "label") -> np.ndarray:
    """The ``label`` (or ``intra_label``) of each training sample in a labels file, joined by image path."""
    from vitool.io import read_labels, rows_by_path

    ls = read_labels(path)
    values = getattr(ls, field)
    if values is None:
        raise VitoolError(path, f"has no {field}", "use a per-modality labels file (e.g. vitool weak-labels)")
    fix = "use a labels file made from this dataset's training split (e.g. vitool cluster on its features)"
    return values[rows_by_path(ls, [s.path for s in samples], path, "training images", fix)].astype(np.int64)

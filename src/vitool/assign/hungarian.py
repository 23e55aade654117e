"""PGM's cluster-centre matching (Wu & Ye, "Unsupervised Visible-Infrared Person
Re-Identification via Progressive Graph Matching and Alternate Learning", CVPR 2023), the baseline association
and the one PCLHD uses.

Cost = exp(-cos(c_v, c_r)) between L2-normalised cluster centres. A first Hungarian round matches
min(K_V, K_R) pairs one to one; the clusters of the larger modality left over get further rounds
against all clusters of the smaller one (many to one), until every cluster has a partner, so unlike
the released code nothing breaks when one modality has more than twice the other's clusters. Each
cluster of the larger modality then takes its partner's id.

``space`` names the modality whose cluster ids become the shared labels ("auto": the one with fewer
clusters, as above). PGM alternates it by epoch: even epochs visible clusters take infrared partners
(``space="infrared"``), odd epochs the reverse; the other modality's clusters are matched into it by
as many rounds as they need.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from vitool.assign import INFRARED, VISIBLE, Assignment, class_centres
from vitool.errors import VitoolError


def match_centres(big: np.ndarray, small: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partner (row of ``small``) for every row of ``big``, and the round in which it was matched."""
    cost = np.exp(-(big @ small.T))
    partner = np.full(len(big), -1, dtype=np.int64)
    rounds = np.zeros(len(big), dtype=np.int64)
    left = np.arange(len(big))
    r = 0
    while len(left):
        r += 1
        rows, cols = linear_sum_assignment(cost[left])
        partner[left[rows]] = cols
        rounds[left[rows]] = r
        left = np.setdiff1d(left, left[rows])
    return partner, rounds


def assign_hungarian(features: np.ndarray, modality: np.ndarray, intra: np.ndarray, space: str = "auto") -> Assignment:
    if space not in ("auto", "visible", "infrared"):
        raise VitoolError(None, f"--space {space}", "use auto, visible or infrared")
    vis = (modality == VISIBLE) & (intra >= 0)
    ir = (modality == INFRARED) & (intra >= 0)
    v_ids, v_centres = class_centres(features[vis], intra[vis])
    r_ids, r_centres = class_centres(features[ir], intra[ir])
    label = intra.astype(np.int64).copy()
    if space == "auto":
        space = "infrared" if len(v_ids) >= len(r_ids) else "visible"
    if space == "infrared":
        partner, rounds = match_centres(v_centres, r_centres)
        mapping = dict(zip(v_ids.tolist(), r_ids[partner].tolist(), strict=True))
        label[vis] = [mapping[x] for x in intra[vis].tolist()]
        pairs = np.stack([v_ids, r_ids[partner], rounds], axis=1)
    else:
        partner, rounds = match_centres(r_centres, v_centres)
        mapping = dict(zip(r_ids.tolist(), v_ids[partner].tolist(), strict=True))
        label[ir] = [mapping[x] for x in intra[ir].tolist()]
        pairs = np.stack([v_ids[partner], r_ids, rounds], axis=1)
    return Assignment(
        label=label,
        intra_label=intra.astype(np.int64),
        extra={"pairs": pairs.astype(np.int64)},  # visible cluster, infrared cluster, matching round
        attrs={"space": space, "one_to_one_pairs": int((pairs[:, 2] == 1).sum()), "rounds": int(pairs[:, 2].max())},
    )

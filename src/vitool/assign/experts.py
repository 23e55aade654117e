"""Cross-modal relation establishment (CRE) of the heterogeneous-experts method (Zhang et al.,
ICCV 2025, arXiv 2507.12942; released KongLingqi2333/WSL-VIReID ``wsl.py``): weak supervision gives
identity labels inside each modality but no cross-modal link.

1. Each modality's expert predicts the *other* modality's identities: the infrared expert scores the
   visible samples (P_vr, N_v x C_r) and the visible expert the infrared samples (P_rv, N_r x C_v), as
   softmax(T * logits) with T = 3 (the reference multiplies, so it sharpens).
2. Count Priority Selection per direction: keep the N_a most probable (sample, class) entries of the
   whole matrix (one per sample on average; the reference's ceil(N_a C_b / C) with C_b = C), each a vote
   for (own identity, predicted identity); sort identity pairs by votes, ties by their best entry's
   rank (a stable rule of ours, the reference's is an unstable sort); accept greedily one to one.
3. With A: visible -> infrared and B: infrared -> visible from the two directions, a pair is
   *consistent* when both agree, *single* when the other expert claims neither end, *contradictory*
   otherwise (the paper's matrix form: a visible id may have two contradictory candidates).

Experts are the classifiers stored with the features (``expert_visible`` [C_v, D] with
``expert_visible_classes``, likewise ``expert_infrared``; see docs/formats.md) or, when absent,
prototype classifiers: cosine similarity to each identity's mean feature divided by 0.1.
In ``label`` a consistent or single pair shares the visible id; every other identity keeps an id of
its own that collides with nothing.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from vitool.assign import Assignment, class_centres
from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE, l2_normalise

PROTOTYPE_TEMPERATURE = 0.1


def count_priority_selection(probs: np.ndarray, own: np.ndarray) -> tuple[dict[int, int], dict[tuple[int, int], int]]:
    """Greedy one-to-one map own id -> column index from the globally most probable entries, and the votes."""
    n, c = probs.shape
    flat = probs.ravel()
    cut = np.partition(flat, flat.size - n)[flat.size - n]  # the N-th largest value
    candidates = np.flatnonzero(flat >= cut)
    order = candidates[np.lexsort((candidates, -flat[candidates]))][:n]  # top-N, ties by position (stable)
    rows, cols = np.divmod(order, c)
    votes: dict[tuple[int, int], int] = {}
    first: dict[tuple[int, int], int] = {}
    for rank, (i, j) in enumerate(zip(own[rows].tolist(), cols.tolist(), strict=True)):
        votes[(i, j)] = votes.get((i, j), 0) + 1
        first.setdefault((i, j), rank)
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    for pair in sorted(votes, key=lambda p: (-votes[p], first[p])):
        if pair[0] not in mapping and pair[1] not in taken:
            mapping[pair[0]] = pair[1]
            taken.add(pair[1])
    return mapping, votes


def partition(a: dict[int, int], b: dict[int, int]) -> dict[str, list[tuple[int, int]]]:
    """Split the pairs of A (visible -> infrared) and B (infrared -> visible) into the three kinds."""
    a_targets, b_targets = set(a.values()), set(b.values())
    kinds: dict[str, set[tuple[int, int]]] = {"consistent": set(), "single": set(), "contradictory": set()}
    for v, r in a.items():
        if b.get(r) == v:
            kinds["consistent"].add((v, r))
        elif v not in b_targets and r not in b:
            kinds["single"].add((v, r))
        else:
            kinds["contradictory"].add((v, r))
    for r, v in b.items():
        if a.get(v) == r:
            continue
        if r not in a_targets and v not in a:
            kinds["single"].add((v, r))
        else:
            kinds["contradictory"].add((v, r))
    return {k: sorted(p) for k, p in kinds.items()}


def _expert_logits(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, classes: np.ndarray | None, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(classes, logits of ``target`` features) of the expert trained on (features, labels)."""
    if weights is not None:
        return classes, target @ weights.T
    ids, centres = class_centres(features, labels)
    return ids, l2_normalise(target) @ centres.T / PROTOTYPE_TEMPERATURE


def assign_experts(
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    experts: dict[str, np.ndarray] | None = None,
    sharpen: float = 3.0,
    where: str = "features",
) -> Assignment:
    experts = experts or {}
    vis = np.flatnonzero((modality == VISIBLE) & (intra >= 0))
    ir = np.flatnonzero((modality == INFRARED) & (intra >= 0))
    stored = [
        experts.get(k)
        for k in ("expert_visible", "expert_visible_classes", "expert_infrared", "expert_infrared_classes")
    ]
    if any(x is not None for x in stored) and any(x is None for x in stored):
        raise VitoolError(where, "holds only part of the expert datasets", "store all four (docs/formats.md)")
    w_v, c_v, w_r, c_r = stored
    v_ids, logits_rv = _expert_logits(features[vis], intra[vis], w_v, c_v, features[ir])  # visible expert on IR
    r_ids, logits_vr = _expert_logits(features[ir], intra[ir], w_r, c_r, features[vis])  # IR expert on visible
    a_cols, votes_vr = count_priority_selection(softmax(sharpen * logits_vr, axis=1), intra[vis])
    b_cols, votes_rv = count_priority_selection(softmax(sharpen * logits_rv, axis=1), intra[ir])
    a = {v: int(r_ids[j]) for v, j in a_cols.items()}
    b = {r: int(v_ids[j]) for r, j in b_cols.items()}
    col_of_r = {int(r): j for j, r in enumerate(r_ids)}
    col_of_v = {int(v): j for j, v in enumerate(v_ids)}
    kinds = partition(a, b)
    tables = {}
    for kind, pairs in kinds.items():
        rows = [(v, r, votes_vr.get((v, col_of_r[r]), 0), votes_rv.get((r, col_of_v[v]), 0)) for v, r in pairs]
        tables[f"pairs_{kind}"] = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
    partner = {r: v for v, r in kinds["consistent"] + kinds["single"]}
    label = np.full(len(intra), -1, dtype=np.int64)
    label[vis] = intra[vis]
    fresh = int(max(intra.max(), 0)) + 1
    for r in np.unique(intra[ir]).tolist():
        rows = ir[intra[ir] == r]
        if r in partner:
            label[rows] = partner[r]
        else:
            label[rows] = fresh
            fresh += 1
    return Assignment(
        label=label,
        intra_label=intra.astype(np.int64),
        extra=tables,
        attrs={f"{k}_pairs": len(p) for k, p in kinds.items()}
        | {"sharpen": sharpen, "experts": "stored" if w_v is not None else "prototypes"},
    )

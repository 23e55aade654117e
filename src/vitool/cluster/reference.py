"""The reference algorithms written plainly (dense matrices, per-sample loops): our own code, used as the
oracle in tests and the baseline in benchmarks/cluster_speed.py (the released
cluster-contrast ``compute_jaccard_distance``, which PGM, ADCA and PCLHD copy)."""

from __future__ import annotations

import numpy as np


def jaccard_dense(features: np.ndarray, initial_rank: np.ndarray, k1: int = 30, k2: int = 6) -> np.ndarray:
    """Dense N x N k-reciprocal Jaccard distance, step by step as the cluster-contrast code does it."""
    n = len(features)
    rank = initial_rank[:, :k1]

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = rank[i, : k + 1]
        backward = rank[forward, : k + 1]
        return forward[np.where(backward == i)[0]]

    half_k = int(np.around(k1 / 2))
    full = [reciprocal(i, k1) for i in range(n)]
    half = [reciprocal(i, half_k) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        expansion = full[i]
        for candidate in full[i]:
            cand = half[candidate]
            if len(np.intersect1d(cand, full[i])) > 2 / 3 * len(cand):
                expansion = np.append(expansion, cand)
        expansion = np.unique(expansion)
        if not len(expansion):  # i outside its own k1 neighbours (many identical features): an empty row
            continue
        dist = 2 - 2 * features[i] @ features[expansion].T
        e = np.exp(-dist - (-dist).max())
        v[i, expansion] = e / e.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    inverted = [np.where(v[:, k] != 0)[0] for k in range(n)]
    jaccard = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        acc = np.zeros(n, dtype=np.float32)
        for k in np.where(v[i] != 0)[0]:
            acc[inverted[k]] += np.minimum(v[i, k], v[inverted[k], k])
        jaccard[i] = 1 - acc / (2 - acc)
    return np.maximum(jaccard, 0)

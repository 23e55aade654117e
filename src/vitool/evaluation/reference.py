"""The reference evaluators' algorithm written as a plain per-query loop (our own code, not theirs).

It follows the evaluator of the released AGW code (mangye16/Cross-Modal-Re-ID-baseline ``eval_metrics.py``,
which OTLA's and CAJ's copy) step by step: full
argsort of -q.g, removal mask, identity deduplication with ``np.unique(return_index)`` for
eval_sysu / eval_llcm, AP and INP on the non-deduplicated kept list. It exists as the oracle that
tests compare the vectorised evaluator against, and as the baseline of benchmarks/evaluate_speed.py.
"""

from __future__ import annotations

import numpy as np

from vitool.evaluation.metrics import MAX_RANK, Exclusion, Metrics, exclusion_mask


def evaluate_loop(
    query: np.ndarray,
    gallery: np.ndarray,
    q_pid: np.ndarray,
    g_pid: np.ndarray,
    q_cam: np.ndarray,
    g_cam: np.ndarray,
    exclusion: Exclusion = "none",
    identity_cmc: bool = False,
) -> Metrics:
    distmat = -np.matmul(query, gallery.T)
    num_q, num_g = distmat.shape
    max_rank = min(MAX_RANK, num_g)
    indices = np.argsort(distmat, axis=1)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(num_q):
        order = indices[i]
        removed = exclusion_mask(exclusion, q_pid[i : i + 1], q_cam[i : i + 1], g_pid[order], g_cam[order])
        keep = np.ones(num_g, dtype=bool) if removed is None else ~removed[0]
        ranked_pids = g_pid[order][keep]
        matches = (ranked_pids == q_pid[i]).astype(np.int32)
        if not matches.any():
            continue
        if identity_cmc:
            first_index = np.unique(ranked_pids, return_index=True)[1]
            dedup = ranked_pids[np.sort(first_index)]
            cmc = (dedup == q_pid[i]).astype(np.int32).cumsum()
        else:
            cmc = matches.cumsum()
        cmc = np.minimum(cmc, 1)[:max_rank]
        if len(cmc) < max_rank:  # fewer distinct identities than ranks: the curve stays flat
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        all_cmc.append(cmc)
        hits = matches.cumsum()
        last = np.flatnonzero(matches).max()
        all_inp.append(hits[last] / (last + 1.0))
        precision = hits / (np.arange(len(matches)) + 1.0)
        all_ap.append((precision * matches).sum() / matches.sum())
    if not all_cmc:
        return Metrics(np.zeros(MAX_RANK), 0.0, 0.0, 0, num_q)
    cmc = np.asarray(all_cmc, dtype=np.float64).mean(axis=0)
    if max_rank < MAX_RANK:
        cmc = np.concatenate([cmc, np.full(MAX_RANK - max_rank, cmc[-1])])
    return Metrics(cmc, float(np.mean(all_ap)), float(np.mean(all_inp)), len(all_cmc), num_q - len(all_cmc))

"""CMC, mAP and mINP with the exclusion rules of the VI-ReID reference evaluators, vectorised and chunked.

Semantics (shared/reference/ref-otla-eval.md §2.4): rank the gallery by descending cosine similarity,
drop the excluded gallery items, then
* AP = (1/R) sum_j j / rank_j over the R true matches kept, INP = R / rank_R;
* CMC either per image (eval_regdb: first true match) or per identity (eval_sysu / eval_llcm: each
  gallery identity ranked by its best kept image);
* queries with no kept true match are skipped; an error only when none is left.

Instead of sorting every row, the rank of a true match is counted as 1 + the number of kept gallery
items that score higher, which is exact when there are no ties and needs one pass per true match. Work
is chunked over queries so memory stays bounded (about ``chunk x gallery`` floats at a time). Only numpy
is needed; ``device="cuda"`` moves the similarity products to the GPU through torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Exclusion = Literal["none", "sysu", "same_pid_cam"]
MAX_RANK = 20


@dataclass
class Metrics:
    cmc: np.ndarray  # [MAX_RANK] fraction of valid queries matched within rank k
    mAP: float
    mINP: float
    valid_queries: int
    skipped_queries: int

    def as_dict(self) -> dict[str, float | int | list[float]]:
        return {
            "rank1": float(self.cmc[0]) * 100,
            "rank5": float(self.cmc[4]) * 100,
            "rank10": float(self.cmc[9]) * 100,
            "rank20": float(self.cmc[19]) * 100,
            "mAP": self.mAP * 100,
            "mINP": self.mINP * 100,
            "valid_queries": self.valid_queries,
            "skipped_queries": self.skipped_queries,
            "cmc": [float(v) * 100 for v in self.cmc],
        }


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def exclusion_mask(rule: Exclusion, q_pid, q_cam, g_pid, g_cam) -> np.ndarray | None:
    """True where a gallery item is removed for a query ([B, G]); None when nothing is removed."""
    if rule == "none":
        return None
    if rule == "sysu":  # the official rule: a cam3 probe never sees cam2 (same room), whatever the identity
        return (q_cam[:, None] == 3) & (g_cam[None, :] == 2)
    if rule == "same_pid_cam":  # Market / eval_llcm; cam -1 means unknown and excludes nothing
        same = (q_pid[:, None] == g_pid[None, :]) & (q_cam[:, None] == g_cam[None, :])
        return same & (q_cam[:, None] >= 0)
    raise ValueError(rule)


def _similarity(query: np.ndarray, gallery: np.ndarray, device: str):
    if device == "cpu":
        return lambda lo, hi: query[lo:hi] @ gallery.T
    import torch  # only for GPU evaluation

    g = torch.from_numpy(gallery).to(device)
    q = torch.from_numpy(query).to(device)
    return lambda lo, hi: (q[lo:hi] @ g.T).cpu().numpy()


def _true_match_scores(sim: np.ndarray, match: np.ndarray, n_match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of each row's true matches, best first, padded with -inf to [B, max R]; and the pad mask."""
    rows, cols = np.nonzero(match)
    values = sim[rows, cols]
    order = np.lexsort((-values, rows))
    rows, values = rows[order], values[order]
    starts = np.concatenate(([0], np.cumsum(n_match)[:-1]))
    slot = np.arange(len(rows)) - starts[rows]
    out = np.full((len(sim), int(n_match.max())), -np.inf, dtype=sim.dtype)
    out[rows, slot] = values
    return out, np.isfinite(out)


def evaluate_ranking(
    query: np.ndarray,
    gallery: np.ndarray,
    q_pid: np.ndarray,
    g_pid: np.ndarray,
    q_cam: np.ndarray,
    g_cam: np.ndarray,
    exclusion: Exclusion = "none",
    identity_cmc: bool = False,
    chunk: int = 512,
    device: str = "cpu",
) -> Metrics:
    """Score L2-normalised ``query`` [Q, D] against ``gallery`` [G, D]."""
    query = np.ascontiguousarray(query, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    q_pid, g_pid = np.asarray(q_pid, np.int64), np.asarray(g_pid, np.int64)
    q_cam, g_cam = np.asarray(q_cam, np.int64), np.asarray(g_cam, np.int64)
    n_gallery = len(gallery)
    sim_of = _similarity(query, gallery, device)
    # identity-level CMC: gallery sorted by pid so that per-identity maxima are one reduceat
    by_pid = np.argsort(g_pid, kind="stable")
    uniq, starts = np.unique(g_pid[by_pid], return_index=True)

    cmc_hits = np.zeros(MAX_RANK, dtype=np.float64)
    ap_sum = inp_sum = 0.0
    valid = 0
    for lo in range(0, len(query), chunk):
        hi = min(lo + chunk, len(query))
        sim = sim_of(lo, hi).astype(np.float32, copy=False)
        removed = exclusion_mask(exclusion, q_pid[lo:hi], q_cam[lo:hi], g_pid, g_cam)
        if removed is not None:
            sim = np.where(removed, -np.inf, sim)  # removed items never outrank anything
        match = (q_pid[lo:hi, None] == g_pid[None, :]) & np.isfinite(sim)
        n_match = match.sum(axis=1)
        ok = n_match > 0
        if not ok.any():
            continue
        sim, match, n_match = sim[ok], match[ok], n_match[ok]
        # rank (1-based, among kept items) of each true match, sorted by descending similarity
        pos_sim, has = _true_match_scores(sim, match, n_match)
        width = pos_sim.shape[1]
        ranks = np.empty(pos_sim.shape, dtype=np.float64)
        for j in range(width):
            ranks[:, j] = (sim > pos_sim[:, j : j + 1]).sum(axis=1) + 1
        ap = np.where(has, (np.arange(width)[None, :] + 1) / ranks, 0.0).sum(axis=1) / n_match
        last = ranks[np.arange(len(ranks)), n_match - 1]
        ap_sum += float(ap.sum())
        inp_sum += float((n_match / last).sum())
        valid += len(ranks)
        if identity_cmc:  # rank of the true identity among distinct gallery identities
            best = np.maximum.reduceat(sim[:, by_pid], starts, axis=1)  # [B, P]
            true_best = pos_sim[:, 0:1]
            first = (best > true_best).sum(axis=1)
        else:
            first = ranks[:, 0] - 1
        first = first.astype(np.int64)
        np.add.at(cmc_hits, first[first < MAX_RANK], 1.0)
    skipped = len(query) - valid
    if valid == 0:
        return Metrics(np.zeros(MAX_RANK), 0.0, 0.0, 0, skipped)
    cmc = np.cumsum(cmc_hits) / valid
    if n_gallery < MAX_RANK:  # the references cap max_rank at the gallery size; keep the last value
        cmc[n_gallery:] = cmc[n_gallery - 1]
    return Metrics(cmc, ap_sum / valid, inp_sum / valid, valid, skipped)

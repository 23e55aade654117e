"""CMC, mAP and mINP with the exclusion rules of the VI-ReID reference evaluators, vectorised and chunked.

Semantics (the released AGW evaluator, mangye16/Cross-Modal-Re-ID-baseline ``eval_metrics.py``): rank
the gallery by descending cosine similarity, drop the excluded gallery items, then
* AP = (1/R) sum_j j / rank_j over the R true matches kept, INP = R / rank_R;
* CMC either per image (eval_regdb: first true match) or per identity (eval_sysu / eval_llcm: each
  gallery identity ranked by its best kept image);
* queries with no kept true match are skipped; an error only when none is left.

Instead of sorting every ranking, the rank of a true match is counted as the number of kept gallery
items that score at least as high, which is exact when there are no ties and needs one pass per true
match. Ties, which the references order arbitrarily (quicksort), count against the query here, so a
degenerate model with constant features scores near zero rather than 100%. Similarities are held
gallery-major ([G, B]: one row per gallery image, one column per query) so those counts are fast
column sums. Work is chunked over queries so memory stays bounded (about CHUNK_ELEMENTS floats at a
time). Only numpy is needed; ``device="cuda"`` moves the similarity
products to the GPU through torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Exclusion = Literal["none", "sysu", "same_pid_cam"]
MAX_RANK = 20
CHUNK_ELEMENTS = 1 << 24  # similarities held per block of queries (64 MiB as float32)


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


def exclusion_mask(rule: Exclusion, q_pid, q_cam, g_pid, g_cam) -> np.ndarray | None:
    """True where a gallery item is removed for a query ([Q, G]); None when nothing is removed."""
    if rule == "none":
        return None
    if rule == "sysu":  # the official rule: a cam3 probe never sees cam2 (same room), whatever the identity
        return (q_cam[:, None] == 3) & (g_cam[None, :] == 2)
    if rule == "same_pid_cam":  # Market / eval_llcm; cam -1 means unknown and excludes nothing
        same = (q_pid[:, None] == g_pid[None, :]) & (q_cam[:, None] == g_cam[None, :])
        return same & (q_cam[:, None] >= 0)
    raise ValueError(rule)


def _apply_exclusion(rule: Exclusion, sim_t: np.ndarray, q_pid, q_cam, g_pid, g_cam) -> None:
    """Remove excluded gallery items in place (score -inf): they never outrank or match anything."""
    if rule == "sysu":  # only the cam2 rows x cam3 columns block is touched
        rows, cols = np.flatnonzero(g_cam == 2), np.flatnonzero(q_cam == 3)
        if len(rows) and len(cols):
            sim_t[np.ix_(rows, cols)] = -np.inf
        return
    removed = exclusion_mask(rule, q_pid, q_cam, g_pid, g_cam)
    if removed is not None:
        sim_t[removed.T] = -np.inf


SimilaritySource = Callable[[int, int], np.ndarray]  # queries lo:hi as a fresh [G, hi - lo] array


def product_source(query: np.ndarray, gallery: np.ndarray, device: str = "cpu") -> SimilaritySource:
    """gallery @ query[lo:hi].T, computed on demand (on the GPU through torch if asked)."""
    query = np.ascontiguousarray(query, dtype=np.float32)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    if device == "cpu":
        return lambda lo, hi: gallery @ query[lo:hi].T
    import torch  # only for GPU evaluation

    g = torch.from_numpy(gallery).to(device)
    q = torch.from_numpy(query).to(device)
    return lambda lo, hi: (g @ q[lo:hi].T).cpu().numpy()


def _count_columns(mask: np.ndarray) -> np.ndarray:
    """True entries per column of a [G, B] mask, as a sum of byte rows (fast in numpy)."""
    return mask.view(np.uint8).sum(axis=0, dtype=np.int32)


def _true_match_rows(q_pid: np.ndarray, g_pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every query, the gallery rows of its identity, padded to [Q, max images per identity].

    Returns (rows, filled); padded slots point at row 0 and are not filled. Gathering these few
    entries replaces scanning a full match matrix.
    """
    uniq, inverse, counts = np.unique(g_pid, return_inverse=True, return_counts=True)
    width = int(counts.max()) if len(counts) else 1
    table = np.zeros((len(uniq) + 1, width), dtype=np.int64)  # last row: identities absent from the gallery
    filled = np.zeros((len(uniq) + 1, width), dtype=bool)
    by_pid = np.argsort(inverse, kind="stable")
    slot = np.arange(len(g_pid)) - np.repeat(np.cumsum(counts) - counts, counts)
    table[inverse[by_pid], slot] = by_pid
    filled[inverse[by_pid], slot] = True
    where = np.searchsorted(uniq, q_pid).clip(max=max(len(uniq) - 1, 0))
    found = (uniq[where] == q_pid) if len(uniq) else np.zeros(len(q_pid), dtype=bool)
    row = np.where(found, where, len(uniq))
    return table[row], filled[row]


def _distinct_identities_above(g_pid: np.ndarray, onehot_limit: int = 1 << 24):
    """A function (above [G, B] bool) -> per query, how many distinct gallery identities have an item marked.

    With ``above`` = items scoring at least as high as the query's best true match, that count is the
    1-based rank of the true identity in the references' deduplicated ranking (each identity ranked
    by its best kept image). Small galleries use one product with an identity one-hot matrix, large
    ones a logical-or over pid-sorted rows.
    """
    uniq, inverse = np.unique(g_pid, return_inverse=True)
    if len(g_pid) * len(uniq) <= onehot_limit:
        onehot_t = np.zeros((len(uniq), len(g_pid)), dtype=np.float32)
        onehot_t[inverse, np.arange(len(g_pid))] = 1.0
        return lambda above: np.count_nonzero(onehot_t @ above.astype(np.float32), axis=0)
    by_pid = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[by_pid], np.arange(len(uniq)))
    return lambda above: _count_columns(np.logical_or.reduceat(above[by_pid], starts, axis=0))


def evaluate_ranking(
    query: np.ndarray,
    gallery: np.ndarray,
    q_pid: np.ndarray,
    g_pid: np.ndarray,
    q_cam: np.ndarray,
    g_cam: np.ndarray,
    exclusion: Exclusion = "none",
    identity_cmc: bool = False,
    chunk: int | None = None,
    device: str = "cpu",
) -> Metrics:
    """Score L2-normalised ``query`` [Q, D] against ``gallery`` [G, D]."""
    source = product_source(query, gallery, device)
    return rank_metrics(source, q_pid, g_pid, q_cam, g_cam, exclusion, identity_cmc, chunk)


def rank_metrics(
    sim_of: SimilaritySource,
    q_pid: np.ndarray,
    g_pid: np.ndarray,
    q_cam: np.ndarray,
    g_cam: np.ndarray,
    exclusion: Exclusion = "none",
    identity_cmc: bool = False,
    chunk: int | None = None,
) -> Metrics:
    """The metrics from similarities delivered for ``chunk`` queries at a time by ``sim_of(lo, hi)``."""
    q_pid, g_pid = np.asarray(q_pid, np.int64), np.asarray(g_pid, np.int64)
    q_cam, g_cam = np.asarray(q_cam, np.int64), np.asarray(g_cam, np.int64)
    n_gallery = len(g_pid)
    if chunk is None:  # about CHUNK_ELEMENTS similarities per block bounds memory whatever the gallery size
        chunk = int(np.clip(CHUNK_ELEMENTS // max(n_gallery, 1), 16, 16384))
    match_rows, filled = _true_match_rows(q_pid, g_pid)
    if identity_cmc:
        identities_above = _distinct_identities_above(g_pid)

    cmc_hits = np.zeros(MAX_RANK, dtype=np.float64)
    ap_sum = inp_sum = 0.0
    valid = 0
    for lo in range(0, len(q_pid), chunk):
        hi = min(lo + chunk, len(q_pid))
        sim_t = np.asarray(sim_of(lo, hi), dtype=np.float32)  # [G, B], fresh: excluded items are overwritten
        _apply_exclusion(exclusion, sim_t, q_pid[lo:hi], q_cam[lo:hi], g_pid, g_cam)
        # scores of each query's kept true matches, best first (-inf pads the rows to one width)
        queries = np.arange(hi - lo)[:, None]
        pos_sim = np.where(filled[lo:hi], sim_t[match_rows[lo:hi], queries], -np.inf)
        pos_sim = -np.sort(-pos_sim, axis=1)
        has = np.isfinite(pos_sim)
        n_match = np.count_nonzero(has, axis=1)
        ok = n_match > 0
        if not ok.all():
            if not ok.any():
                continue
            sim_t, pos_sim, has, n_match = sim_t[:, ok], pos_sim[ok], has[ok], n_match[ok]
        width = int(n_match.max())
        pos_sim, has = pos_sim[:, :width], has[:, :width]
        # rank (1-based, among kept items) of each true match = kept items scoring at least as high;
        # a tie is resolved against the query, so rank_j >= j always holds and AP <= 1
        ranks = np.empty(pos_sim.shape, dtype=np.float64)
        at_or_above_best = sim_t >= pos_sim[:, 0]
        ranks[:, 0] = _count_columns(at_or_above_best)
        for j in range(1, width):
            ranks[:, j] = _count_columns(sim_t >= pos_sim[:, j])
        ap = np.where(has, (np.arange(width)[None, :] + 1) / ranks, 0.0).sum(axis=1) / n_match
        last = ranks[np.arange(len(ranks)), n_match - 1]
        ap_sum += float(ap.sum())
        inp_sum += float((n_match / last).sum())
        valid += len(ranks)
        if identity_cmc:  # rank of the true identity among distinct gallery identities
            first = identities_above(at_or_above_best) - 1  # the true identity is among them
        else:
            first = ranks[:, 0] - 1
        first = first.astype(np.int64)
        np.add.at(cmc_hits, first[first < MAX_RANK], 1.0)
    skipped = len(q_pid) - valid
    if valid == 0:
        return Metrics(np.zeros(MAX_RANK), 0.0, 0.0, 0, skipped)
    cmc = np.cumsum(cmc_hits) / valid
    if n_gallery < MAX_RANK:  # the references cap max_rank at the gallery size; keep the last value
        cmc[n_gallery:] = cmc[n_gallery - 1]
    return Metrics(cmc, ap_sum / valid, inp_sum / valid, valid, skipped)

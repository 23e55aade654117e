"""k-reciprocal Jaccard distance (Zhong et al., CVPR'17), as the cluster-contrast family computes it,
kept sparse.

Every unsupervised VI-ReID method clusters each modality with DBSCAN on this distance
(alibaba/cluster-contrast-reid ``faiss_rerank.py``, copied by PGM, ADCA and PCLHD). The reference builds
three dense N x N matrices (about 6 GB for SYSU's 22,258 visible images); here every step is a sparse matrix
operation, and only pairs whose distance is below 1 are stored (a missing entry means distance 1, which
DBSCAN with eps < 1 treats the same way).

Steps, with the reference's exact neighbourhood sizes:
1. ``initial_rank``: the k1 nearest neighbours of each sample, itself included.
2. R(i): k-reciprocal neighbours among those k1; R_half(i): among the round(k1/2) + 1 nearest.
3. Expansion: for each c in R(i), add R_half(c) when |R_half(c) & R(i)| > 2/3 |R_half(c)|.
4. V[i, j] = softmax over the expanded set of -(2 - 2 f_i.f_j).
5. Query expansion: row i of V becomes the mean of the rows of its k2 nearest neighbours.
6. J[i, j] = 1 - s / (2 - s) with s = sum_k min(V[i, k], V[j, k]), clipped at 0.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

PAIR_BUDGET = 1 << 22  # (i, j, k) triples held at once while summing minima (~200 MiB)
DENSE_BLOCK_ELEMENTS = 1 << 24  # entries of the dense [rows, N] block they are summed into (~140 MiB)


def _neighbour_graph(initial_rank: np.ndarray, k: int) -> sp.csr_matrix:
    n = len(initial_rank)
    cols = initial_rank[:, :k]
    rows = np.repeat(np.arange(n), cols.shape[1])
    return sp.csr_matrix((np.ones(rows.size, dtype=bool), (rows, cols.ravel())), shape=(n, n))


def _reciprocal(graph: sp.csr_matrix) -> sp.csr_matrix:
    """j in R(i) iff j is among i's neighbours and i among j's."""
    return graph.multiply(graph.T).tocsr().astype(bool)


def _row_softmax(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Softmax within each CSR row. A row can be empty (a sample outside its own k1 neighbours, among
    many identical features): reduceat runs over the non-empty rows' starts only."""
    if not values.size:
        return values
    counts = np.diff(indptr)
    rows = np.repeat(np.arange(len(counts)), counts)
    nonempty = np.flatnonzero(counts)
    starts = indptr[:-1][nonempty]
    peak = np.zeros(len(counts), dtype=values.dtype)
    peak[nonempty] = np.maximum.reduceat(values, starts)
    e = np.exp(values - peak[rows])
    sums = np.ones(len(counts), dtype=e.dtype)
    sums[nonempty] = np.add.reduceat(e, starts)
    return e / sums[rows]


def _pair_dots(features: np.ndarray, rows: np.ndarray, cols: np.ndarray, known=None) -> np.ndarray:
    """f_rows . f_cols per pair. ``known`` = (rank, similarity) of the kNN search: pairs among a row's
    neighbours take the search's product; the rest are computed, gathering ~64 MiB of rows at a time."""
    out = np.empty(rows.size, dtype=np.float32)
    todo = np.arange(rows.size)
    if known is not None:
        rank, similarity = known
        n = len(features)
        keys = (np.arange(n)[:, None] * n + rank).ravel()
        order = np.argsort(keys, kind="stable")
        pair_keys = rows.astype(np.int64) * n + cols
        at = np.searchsorted(keys, pair_keys, sorter=order).clip(max=keys.size - 1)
        found = keys[order[at]] == pair_keys
        out[found] = similarity.ravel()[order[at[found]]]
        todo = np.flatnonzero(~found)
    chunk = max(1, (1 << 24) // features.shape[1])
    for lo in range(0, todo.size, chunk):
        pick = todo[lo : lo + chunk]
        out[pick] = np.einsum("ij,ij->i", features[rows[pick]], features[cols[pick]])
    return out


def _min_sums(v: sp.csr_matrix) -> sp.csr_matrix:
    """S[i, j] = sum_k min(V[i, k], V[j, k]) over pairs sharing a non-zero column (an inverted index).

    The pairs are the pattern of V V^T (a sparse product). S is symmetric, so only j >= i is summed: rows
    are done in blocks, each block's (i, k, j >= i) triples summed into a dense [rows, N] block by
    ``np.bincount`` and read at the pattern's entries, and the lower triangle is copied from the upper
    (the same sums in the same order). No sort of the triples."""
    n = v.shape[0]
    v_csc = v.tocsc()
    v_csc.sort_indices()
    col_of_entry = np.repeat(np.arange(n), np.diff(v_csc.indptr))
    keys = col_of_entry.astype(np.int64) * n + v_csc.indices  # ascending: by column, then row
    pattern = v.astype(bool).astype(np.float32)
    pattern = (pattern @ pattern.T).tocsr()
    pattern.sort_indices()
    col_counts = np.diff(v_csc.indptr)
    entry_rows = np.repeat(np.arange(n), np.diff(v.indptr))
    row_load = np.bincount(entry_rows, weights=col_counts[v.indices], minlength=n)  # triples per row, at most
    rows_per_block = max(1, min(n, DENSE_BLOCK_ELEMENTS // max(n, 1)))
    values = np.empty(pattern.nnz, dtype=np.float32)
    pattern_rows = np.repeat(np.arange(n), np.diff(pattern.indptr))
    upper = pattern.indices >= pattern_rows
    lo = 0
    while lo < n:
        # a block of at most rows_per_block rows whose triples fit the budget (at least one row)
        cum = np.cumsum(row_load[lo : lo + rows_per_block])
        hi = lo + max(1, int(np.searchsorted(cum, PAIR_BUDGET, side="right")))
        block = v[lo:hi].tocoo()
        rows = block.row + lo
        starts = np.searchsorted(keys, block.col.astype(np.int64) * n + rows)  # first j >= i in column k
        reps = v_csc.indptr[block.col + 1] - starts
        i = np.repeat(block.row, reps)
        vi = np.repeat(block.data, reps)
        offsets = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        where = np.repeat(starts, reps) + offsets
        dense = np.bincount(
            i * n + v_csc.indices[where], weights=np.minimum(vi, v_csc.data[where]), minlength=(hi - lo) * n
        )
        a, b = pattern.indptr[lo], pattern.indptr[hi]
        up = np.flatnonzero(upper[a:b]) + a
        values[up] = dense[(pattern_rows[up] - lo) * n + pattern.indices[up]]
        lo = hi
    # the lower triangle: entry (r, c) takes (c, r), located through the transposed pattern's order
    transposed = sp.csr_matrix((np.arange(pattern.nnz), pattern.indices, pattern.indptr), shape=(n, n)).T.tocsr()
    transposed.sort_indices()
    lower = np.flatnonzero(~upper)
    values[lower] = values[transposed.data[lower]]
    return sp.csr_matrix((values, pattern.indices, pattern.indptr), shape=(n, n))


def jaccard_distance(
    features: np.ndarray, initial_rank: np.ndarray, k1: int = 30, k2: int = 6, similarity: np.ndarray | None = None
) -> sp.csr_matrix:
    """Sparse k-reciprocal Jaccard distances of L2-normalised ``features``; entries exist only below 1.

    ``initial_rank`` [N, >= k1] holds each sample's neighbours, nearest first, itself included;
    ``similarity`` (optional, same shape) their inner products from the search, reused where it can be.
    """
    n = len(features)
    features = np.ascontiguousarray(features, dtype=np.float32)
    reciprocal = _reciprocal(_neighbour_graph(initial_rank, k1))
    half = _reciprocal(_neighbour_graph(initial_rank, int(np.around(k1 / 2)) + 1))
    # expansion: overlap[i, c] = |R(i) & R_half(c)| for c in R(i)
    overlap = (reciprocal.astype(np.int32) @ half.T.astype(np.int32)).multiply(reciprocal).tocsr()
    half_size = np.asarray(half.sum(axis=1)).ravel()
    o = overlap.tocoo()
    keep = o.data > (2.0 / 3.0) * half_size[o.col]
    chosen = sp.csr_matrix((np.ones(keep.sum(), dtype=np.int32), (o.row[keep], o.col[keep])), shape=(n, n))
    expanded = ((chosen @ half.astype(np.int32)) + reciprocal.astype(np.int32)).tocsr()
    expanded.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(expanded.indptr))
    known = (initial_rank, similarity) if similarity is not None else None
    dist = 2.0 - 2.0 * _pair_dots(features, rows, expanded.indices, known)
    v = sp.csr_matrix(
        (_row_softmax(-dist, expanded.indptr).astype(np.float32), expanded.indices, expanded.indptr), shape=(n, n)
    )
    if k2 != 1:
        qe = _neighbour_graph(initial_rank, k2).astype(np.float32) / np.float32(k2)
        v = (qe @ v).tocsr()
    v.eliminate_zeros()
    s = _min_sums(v)
    s.data = np.maximum(1.0 - s.data / (2.0 - s.data), 0.0).astype(np.float32)  # explicit zeros stay stored
    return s

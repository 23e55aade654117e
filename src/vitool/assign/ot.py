"""OTLA's optimal-transport label assignment (Wang et al., ECCV 2022; released code
wjm-wjm/OTLA-ReID ``otla_sk.py``).

Infrared samples are spread over the visible classes by the SeLa equipartition Sinkhorn: with P [N, K]
the infrared samples' class probabilities, S = (P^T)^lam, iterate alpha <- (1/K) / (S beta) and
beta <- (1/N) / (S^T alpha), checking err = sum_n |beta_n / beta_n' - 1| every 10 iterations and
stopping at err <= 0.1 (the reference rule; no iteration cap in the reference, 10,000 here); each
sample takes argmax_k alpha_k S_kn. Entropic regularisation is 1/lam (0.04 at lam = 25).

P comes from the features file's ``probs`` (a classifier over the visible classes, column j = the j-th
smallest visible label) when present, else from a softmax over cosine similarity to the visible class
centres divided by ``temperature``. Float64 as the reference, on a sparse S by default (see
``sinkhorn_equipartition``); when S underflows (a row or column of zeros) the same iteration runs in
the log domain. POT is not used here: its stopping rules differ
from the reference's, which decides the labels.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from vitool.assign import Assignment, class_centres
from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE, l2_normalise

MAX_ITERATIONS = 10_000
SPARSE_FLOOR = -87.0  # log of the smallest kept entry relative to its column's largest
SPARSE_DENSITY = 0.25  # above this share of kept entries the dense product is faster


def sinkhorn_equipartition(
    log_p: np.ndarray, lam: float = 25.0, tol: float = 0.1, solver: str = "sparse"
) -> tuple[np.ndarray, np.ndarray, int]:
    """(column index per sample, confidence, iterations) for log-probabilities ``log_p`` [N, K].

    ``solver="dense"`` is the reference computation. ``"sparse"`` (default) first divides each column
    of S by its maximum (absorbed by beta, so iterates and labels are unchanged) and drops entries
    below exp(-87) of it, the range of float32; with peaked predictions most of S goes, and each
    iteration is a sparse product. With flat predictions (more than a quarter kept), when a class or
    sample would lose every entry, or when the dropped entries could have changed a row or column sum
    by 1e-12 at the end, it uses the dense computation.
    """
    n, k = log_p.shape
    log_s = lam * log_p.T.astype(np.float64)  # [K, N]
    s = None
    if solver == "sparse":
        shifted = log_s - log_s.max(axis=0, keepdims=True)
        kept = shifted >= SPARSE_FLOOR
        if kept.mean() < SPARSE_DENSITY and kept.any(axis=0).all() and kept.any(axis=1).all():
            rows, cols = np.nonzero(kept)
            s = sp.csr_matrix((np.exp(shifted[rows, cols]), (rows, cols)), shape=(k, n))
    if s is None:
        dense = np.exp(log_s)
        if (dense.sum(axis=0) > 0).all() and (dense.sum(axis=1) > 0).all():
            s = dense
    q = None
    if s is not None and sp.issparse(s):
        alpha, beta, iterations = _plain(s, tol)
        if not np.isfinite(alpha).all() or not _dropped_entries_negligible(s, alpha, beta):
            s = np.exp(log_s)  # the dropped entries could have mattered: redo it densely
    if s is not None and sp.issparse(s):
        q = (sp.diags(alpha) @ s).toarray()
    elif s is not None:
        alpha, _, iterations = _plain(s, tol)
        q = alpha[:, None] * s if np.isfinite(alpha).all() else None
    if q is None or not np.isfinite(q).all() or not (q.sum(axis=0) > 0).all():  # under- or overflow in float64
        log_alpha, _, iterations = _log_domain(log_s, tol)
        q = np.exp(log_alpha[:, None] + log_s - (log_alpha[:, None] + log_s).max(axis=0))
    best = np.argmax(q, axis=0)
    confidence = q[best, np.arange(n)] / q.sum(axis=0)
    return best, confidence, iterations


def _dropped_entries_negligible(s: sp.csr_matrix, alpha: np.ndarray, beta: np.ndarray) -> bool:
    """Every dropped entry is below exp(SPARSE_FLOOR); check that all of them together stay below 1e-12
    of every row and column sum the iteration used, so the dense iterates would have been the same."""
    floor = np.exp(SPARSE_FLOOR)
    rows_ok = floor * beta.sum() <= 1e-12 * (s @ beta).min()
    cols_ok = floor * alpha.sum() <= 1e-12 * (s.T @ alpha).min()
    return bool(rows_ok and cols_ok)


def _plain(s, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    k, n = s.shape
    alpha, beta = np.full(k, 1.0 / k), np.full(n, 1.0 / n)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # the caller checks for inf / nan
        for it in range(1, MAX_ITERATIONS + 1):
            alpha = (1.0 / k) / (s @ beta)
            new_beta = (1.0 / n) / (s.T @ alpha)
            if not np.isfinite(new_beta).all():
                return np.full(k, np.inf), new_beta, it
            if it % 10 == 0 and np.abs(beta / new_beta - 1).sum() <= tol:
                return alpha, new_beta, it
            beta = new_beta
    return alpha, beta, MAX_ITERATIONS


def _log_domain(log_s: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray, int]:
    k, n = log_s.shape
    log_alpha, log_beta = np.full(k, -np.log(k)), np.full(n, -np.log(n))
    for it in range(1, MAX_ITERATIONS + 1):
        log_alpha = -np.log(k) - logsumexp(log_s + log_beta[None, :], axis=1)
        new_log_beta = -np.log(n) - logsumexp(log_s + log_alpha[:, None], axis=0)
        if it % 10 == 0 and np.abs(np.exp(log_beta - new_log_beta) - 1).sum() <= tol:
            return log_alpha, new_log_beta, it
        log_beta = new_log_beta
    return log_alpha, log_beta, MAX_ITERATIONS


def assign_ot(
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    probs: np.ndarray | None = None,
    lam: float = 25.0,
    temperature: float = 0.1,
    cost: str = "auto",
    where: str = "labels",
) -> Assignment:
    vis = (modality == VISIBLE) & (intra >= 0)
    ir = np.flatnonzero(modality == INFRARED)
    classes = np.unique(intra[vis])
    if cost not in ("auto", "probs", "prototypes"):
        raise VitoolError(None, f"--cost {cost}", "use auto, probs or prototypes")
    if cost == "probs" and probs is None:
        raise VitoolError(where, "the features file has no 'probs' dataset", "use --cost prototypes")
    if probs is not None and cost != "prototypes":
        if probs.shape[1] != len(classes):
            raise VitoolError(
                where,
                f"'probs' has {probs.shape[1]} columns but there are {len(classes)} visible classes",
                "use --cost prototypes, or labels from the classifier's own training labels",
            )
        log_p = np.log(np.clip(probs[ir].astype(np.float64), 1e-300, None))
        source = "probs"
    else:
        _, centres = class_centres(features[vis], intra[vis])
        logits = l2_normalise(features[ir]).astype(np.float64) @ centres.T.astype(np.float64) / temperature
        log_p = logits - logsumexp(logits, axis=1)[:, None]
        source = "prototypes"
    if len(classes) > len(ir):
        raise VitoolError(
            where,
            f"{len(classes)} visible classes for {len(ir)} infrared samples",
            "equipartition needs at least as many infrared samples as classes",
        )
    best, confidence, iterations = sinkhorn_equipartition(log_p, lam)
    label = np.where(modality == VISIBLE, intra, -1)
    label[ir] = classes[best]
    conf = np.ones(len(intra), dtype=np.float32)
    conf[ir] = confidence
    return Assignment(
        label=label.astype(np.int64),
        intra_label=intra.astype(np.int64),
        confidence=conf,
        attrs={"sinkhorn_iterations": iterations, "cost": source, "classes": int(len(classes))},
    )

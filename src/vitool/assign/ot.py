"""OTLA's optimal-transport label assignment (Wang et al., ECCV 2022; released code
wjm-wjm/OTLA-ReID ``otla_sk.py``).

Infrared samples are spread over the visible classes by the SeLa equipartition Sinkhorn: with P [N, K]
the infrared samples' class probabilities, S = (P^T)^lam, iterate alpha <- (1/K) / (S beta) and
beta <- (1/N) / (S^T alpha), checking err = sum_n |beta_n / beta_n' - 1| every 10 iterations and
stopping at err <= 0.1 (the reference rule; no iteration cap in the reference, 10,000 here); each
sample takes argmax_k alpha_k S_kn. Entropic regularisation is 1/lam (0.04 at lam = 25).

P comes from the features file's ``probs`` (a classifier over the visible classes, column j = the j-th
smallest visible label) when present, else from a softmax over cosine similarity to the visible class
centres divided by ``temperature``. Float64 as the reference; by default the iterates are computed with
absorbed scalings on a truncated kernel (see ``sinkhorn_equipartition``), so peaked predictions neither
overflow nor cost a dense pass per iteration. POT is not used here: its stopping rules differ from the
reference's, which decides the labels.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.special import logsumexp

from vitool.assign import Assignment, class_centres
from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE, l2_normalise

COSTS = ("auto", "probs", "prototypes")  # the classifier's probabilities, or cosine to visible centres

MAX_ITERATIONS = 10_000
SPARSE_DENSITY = 0.25  # above this share of kept entries the dense product is faster


def sinkhorn_equipartition(
    log_p: np.ndarray, lam: float = 25.0, tol: float = 0.1, solver: str = "stabilized"
) -> tuple[np.ndarray, np.ndarray, int]:
    """(column index per sample, confidence, iterations) for log-probabilities ``log_p`` [N, K].

    ``solver="dense"`` is the reference computation: the plain iteration on S = exp(lam log_p^T) in
    float64, or in the log domain when S or the scalings under- or overflow. ``"stabilized"`` (default)
    runs the same iterates with absorbed scalings on a truncated kernel (``_stabilized``): sparse when
    the predictions are peaked, the same labels and iteration count at any sharpness.
    """
    n, k = log_p.shape
    log_s = lam * log_p.T.astype(np.float64)  # [K, N]
    if solver == "stabilized":
        log_alpha, iterations = _stabilized(log_s, tol)
    else:
        log_alpha, iterations = _dense(log_s, tol)
    log_q = log_alpha[:, None] + log_s  # the plan up to a factor per column: argmax_k alpha_k S_kn
    best = np.argmax(log_q, axis=0)
    log_q -= log_q[best, np.arange(n)]  # each column's largest is 0: its share is 1 / sum exp
    confidence = 1.0 / np.exp(log_q).sum(axis=0)
    return best, confidence, iterations


def _dense(log_s: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """The reference: the plain iteration on the dense S, in the log domain where float64 fails."""
    with np.errstate(under="ignore"):
        s = np.exp(log_s)
    if (s.sum(axis=0) > 0).all() and (s.sum(axis=1) > 0).all():
        alpha, _, iterations = _plain(s, tol)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = alpha[:, None] * s
        if np.isfinite(alpha).all() and (alpha > 0).all() and np.isfinite(q).all() and (q.sum(axis=0) > 0).all():
            return np.log(alpha), iterations
    log_alpha, _, iterations = _log_domain(log_s, tol)
    return log_alpha, iterations


SUPPORT_MARGIN = 100.0  # support: entries within exp(-100) of their row's or column's largest in the plan
ABSORB_AT = 30.0  # scalings beyond exp(+-30) move into the potentials, and the support is recomputed


def _stabilized(log_s: np.ndarray, tol: float) -> tuple[np.ndarray, int]:
    """The reference iteration (alpha <- (1/K) / (S beta), beta <- (1/N) / (S^T alpha), the same stop
    rule) with the scalings split as alpha = exp(f) u and beta = exp(g) v (Schmitzer, "Stabilized
    sparse scaling algorithms for entropy regularized transport problems", SIAM J. Sci. Comput. 2019):
    u and v stay near 1 and iterate on the kernel exp(log_s + f + g), restricted to the entries within
    exp(-SUPPORT_MARGIN) of their row's or column's largest. When u or v leaves exp(+-ABSORB_AT) it moves
    into f and g and the kernel and its support are recomputed, so nothing overflows at any sharpness,
    and a dropped entry stays below exp(-SUPPORT_MARGIN + 2 ABSORB_AT) of what it is compared with.
    When more than SPARSE_DENSITY of the kernel is kept (flat predictions), the plain dense iteration
    is both safe and faster. Returns log alpha and the iterations."""
    k, n = log_s.shape
    f, g = -log_s.max(axis=1), np.full(n, -np.log(n))  # beta starts at 1/N, as the reference's
    sample = log_s[:, :: max(1, n // 1000)] + f[:, None]  # about 1,000 columns: a cheap look at the density
    if (sample >= -SUPPORT_MARGIN).mean() > 2 * SPARSE_DENSITY:  # flat: the plain iteration is safe and faster
        return _dense(log_s, tol)

    def kernel():
        m = log_s + f[:, None] + g[None, :]
        floor = SUPPORT_MARGIN
        kept = (m >= m.max(axis=1, keepdims=True) - floor) | (m >= m.max(axis=0, keepdims=True) - floor)
        if kept.mean() > SPARSE_DENSITY:
            return np.exp(m, where=kept, out=np.zeros_like(m))
        rows, cols = np.nonzero(kept)
        return sp.csr_matrix((np.exp(m[rows, cols]), (rows, cols)), shape=(k, n))

    kt, u, v = kernel(), np.ones(k), np.ones(n)
    if not sp.issparse(kt):  # flat predictions: nothing to truncate, and the plain iteration is safe
        return _dense(log_s, tol)
    kt_t = kt.T.tocsr()
    low, high = np.exp(-ABSORB_AT), np.exp(ABSORB_AT)
    for it in range(1, MAX_ITERATIONS + 1):
        u = (1.0 / k) / (kt @ v)
        new_v = (1.0 / n) / (kt_t @ u)
        if it % 10 == 0 and np.abs(v / new_v - 1).sum() <= tol:
            return f + np.log(u), it
        v = new_v
        if not (low < u.min() and u.max() < high and low < v.min() and v.max() < high):
            f, g = f + np.log(u), g + np.log(v)
            kt, u, v = kernel(), np.ones(k), np.ones(n)
            kt_t = kt.T if not sp.issparse(kt) else kt.T.tocsr()  # a kernel that grew dense stays usable
    return f + np.log(u), MAX_ITERATIONS


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
    if cost not in COSTS:
        raise VitoolError(None, f"--cost {cost}", f"use {', '.join(COSTS)}")
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

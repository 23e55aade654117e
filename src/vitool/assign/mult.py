"""MULT's homogeneous and heterogeneous consistent label transfer (He et al., IJCV 2024,
arXiv 2402.00672; released FranklinLingfeng/code_for_MULT).

Inputs: L2-normalised features of every sample (outliers included), their per-modality cluster labels,
and the k-reciprocal Jaccard distances recomputed from the features (k1 30, k2 6).

1. Initial intra-modality soft labels Y_V0 = softmax(F_V C_V^T / 0.05), Y_R0 likewise, with C the
   un-normalised cluster centres of the normalised features.
2. Initial cross-modality labels Z_V0 = onehot(argmax of the entropic OT plan between visible samples
   and infrared centres) on squared Euclidean cost, eps 0.04 (lambda 25), uniform marginals;
   Z_R0 likewise.
3. Heterogeneous affinity: the OT plan P between all visible and all infrared samples (same solver);
   A_VR = rownorm(P), A_RV = rownorm(P^T).
4. Homogeneous affinity: S = rownorm(1 - J) per modality (sparse; zero outside k-reciprocal sets).
5. Fixed point, in the infrared label space (and symmetrically in the visible one), alpha 0.2:
   Y_R <- (1-a) A_RV Z_V + a Y_R0;  Z_V <- (1-a) A_VR Y_R + a Z_V0;  Y_R <- (S_R Y_R + Y_R) / 2;
   Z_V <- (S_V Z_V + Z_V) / 2;  until the relative L1 change of both is below 1e-2, at most 20 rounds.
6. Soft labels 0.7 onehot(argmax) + 0.3 Y.

The Sinkhorn solver follows the released one (alternating scalings, stop when
sum |b / b' - 1| < 0.1 checked every 10 iterations, at most 500). Its kernel is shifted per row
(absorbed in the row scaling), so it is computed in float32 without underflow and the N_V x N_R plan
is never formed: rownorm(P) is applied as K diag(b) products. POT's ``ot.sinkhorn`` solves the same
problem (``reg = 0.04``) but stops differently; the released rule decides the labels, so we keep it.

``device`` (auto | cpu | cuda): on CUDA the N_V x N_R kernel, its Sinkhorn and the transfer's products run
in torch on the GPU, as the released code's do (the same functions: they use only operators that numpy
arrays and torch tensors share); on the CPU they run in numpy, faster there than torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax

from vitool.assign import Assignment, class_means
from vitool.devices import resolve_device
from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE, l2_normalise

LAMBDA = 25.0
INIT_TEMPERATURE = 0.05
SPACES = ("visible", "infrared")  # the label space both modalities end in


def _kernel(x, y, lam: float):
    """exp(-lam (D - min_row D)) for squared Euclidean D, float32, [len(x), len(y)]; numpy or torch."""
    if isinstance(x, np.ndarray):
        d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
        d -= d.min(axis=1, keepdims=True)
        return np.exp(-lam * d, dtype=np.float32)
    d = (x @ y.T).mul_(-2.0).add_((x * x).sum(1)[:, None]).add_((y * y).sum(1)[None, :])
    d -= d.amin(1, keepdim=True)
    return d.mul_(-lam).exp_()  # in place: the GPU holds one N_V x N_R matrix, not four


def sinkhorn_scalings(kernel, tol: float = 0.1, max_iter: int = 500):
    """Row and column scalings (a, b) of the uniform-marginal plan diag(a) K diag(b), and the
    iterations; ``kernel`` is a numpy array or a torch tensor, and so are the scalings."""
    n, k = kernel.shape
    b = np.full(k, 1.0 / k, np.float32) if isinstance(kernel, np.ndarray) else kernel.new_full((k,), 1.0 / k)
    a = None
    for it in range(1, max_iter + 1):
        a = (1.0 / n) / (kernel @ b)
        new_b = (1.0 / k) / (kernel.T @ a)
        if it % 10 == 1 and float(abs(b / new_b - 1).sum()) < tol:  # after 1, 11, 21, ... as released
            return a, new_b, it
        b = new_b
    return a, b, max_iter


def _onehot(index: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(index), width), dtype=np.float32)
    out[np.arange(len(index)), index] = 1.0
    return out


def _homogeneous(features: np.ndarray, k1: int, k2: int, device: str) -> sp.csr_matrix:
    from vitool.cluster import knn
    from vitool.cluster.jaccard import jaccard_distance

    rank, sim = knn(features, max(k1, k2), device, return_similarity=True)
    jaccard = jaccard_distance(features, rank, k1, k2, similarity=sim)
    affinity = jaccard.copy()
    affinity.data = 1.0 - affinity.data
    row_sums = np.asarray(affinity.sum(axis=1), dtype=np.float32).ravel()
    return (sp.diags(1.0 / row_sums) @ affinity).astype(np.float32).tocsr()


PRODUCT_COLUMNS = 16  # columns of the label matrix per sparse product: a slice that stays in cache


def _sparse_times(s: sp.csr_matrix, y: np.ndarray) -> np.ndarray:
    """s @ y, column slice by column slice: the same sums in the same order, about twice as fast on a
    label matrix of hundreds of columns (scipy's product reads rows of y at random)."""
    out = np.empty((s.shape[0], y.shape[1]), dtype=np.result_type(s.dtype, y.dtype))
    for lo in range(0, y.shape[1], PRODUCT_COLUMNS):
        out[:, lo : lo + PRODUCT_COLUMNS] = s @ np.ascontiguousarray(y[:, lo : lo + PRODUCT_COLUMNS])
    return out


def _smoothing(s: sp.csr_matrix, device):
    """x -> S x for the homogeneous affinity S: scipy on the CPU, a torch sparse product elsewhere."""
    if device is None:
        return lambda x: _sparse_times(s, x)
    import torch

    coo = s.tocoo()
    rows_cols = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data)
    s_dev = torch.sparse_coo_tensor(rows_cols, values, size=s.shape, check_invariants=True).coalesce().to(device)
    return lambda x: s_dev @ x


def _transfer(y0, z0, to_y, to_z, smooth_y, smooth_z, alpha: float, max_rounds: int, tol: float):
    """The fixed point of step 5: y lives in its own modality, z in the other; returns (y, z, rounds).
    numpy arrays or torch tensors alike."""
    y, z = y0, z0
    for rounds in range(1, max_rounds + 1):
        y_old, z_old = y, z
        y = (1 - alpha) * to_y(z) + alpha * y0
        z = (1 - alpha) * to_z(y) + alpha * z0
        y = 0.5 * (smooth_y(y) + y)
        z = 0.5 * (smooth_z(z) + z)
        change = max(float(abs(z - z_old).sum() / abs(z_old).sum()), float(abs(y - y_old).sum() / abs(y_old).sum()))
        if change < tol:
            return y, z, rounds
    return y, z, max_rounds


def assign_mult(
    features: np.ndarray, modality: np.ndarray, intra: np.ndarray, space: str = "visible", **options: Any
) -> Assignment:
    """Both modalities in the label space ``space`` (visible | infrared); ``options`` are
    :func:`mult_transfer`'s (alpha, soft_weight, k1, k2, max_rounds, tol, device)."""
    if space not in SPACES:
        raise VitoolError(None, f"--space {space}", f"use {' or '.join(SPACES)}")
    return mult_transfer(features, modality, intra, **options)[space]


def mult_transfer(
    features: np.ndarray,
    modality: np.ndarray,
    intra: np.ndarray,
    alpha: float = 0.2,
    soft_weight: float = 0.7,
    k1: int = 30,
    k2: int = 6,
    max_rounds: int = 20,
    tol: float = 1e-2,
    device: str = "auto",
) -> dict[str, Assignment]:
    """The transfer in both label spaces from one Sinkhorn, by space name, as the released code computes
    every cross epoch: in each, ``label`` and ``soft`` give every image of both modalities that space's
    cluster (its own refined label, or the other modality's cross label) and ``intra_label`` the refined
    per-modality labels."""
    vis, ir = np.flatnonzero(modality == VISIBLE), np.flatnonzero(modality == INFRARED)
    f_v, f_r = l2_normalise(features[vis]), l2_normalise(features[ir])
    v_ids, c_v = class_means(f_v, intra[vis])  # un-normalised centres, as the released code
    r_ids, c_r = class_means(f_r, intra[ir])
    y_v0 = softmax(f_v @ c_v.T / INIT_TEMPERATURE, axis=1).astype(np.float32)
    y_r0 = softmax(f_r @ c_r.T / INIT_TEMPERATURE, axis=1).astype(np.float32)
    z_v0 = _initial_cross(f_v, c_r)
    z_r0 = _initial_cross(f_r, c_v)
    s_v, s_r = _homogeneous(f_v, k1, k2, device), _homogeneous(f_r, k1, k2, device)
    on = resolve_device(device)
    (y_v, y_r, z_v, z_r), iterations, rounds_r, rounds_v = _cross_transfer(
        f_v, f_r, (y_v0, y_r0, z_v0, z_r0), s_v, s_r, alpha, max_rounds, tol, None if on.type == "cpu" else on
    )
    intra_out = np.empty(len(intra), dtype=np.int64)
    intra_out[vis], intra_out[ir] = v_ids[y_v.argmax(1)], r_ids[y_r.argmax(1)]
    attrs = {"sinkhorn_iterations": iterations, "rounds_infrared_space": rounds_r, "rounds_visible_space": rounds_v}
    out = {}
    for space, own, other, ids, own_rows, other_rows in (
        ("visible", y_v, z_r, v_ids, vis, ir),
        ("infrared", y_r, z_v, r_ids, ir, vis),
    ):
        label = np.empty(len(intra), dtype=np.int64)
        soft = np.empty((len(intra), len(ids)), dtype=np.float32)
        for rows, y in ((own_rows, own), (other_rows, other)):
            best = y.argmax(1)
            label[rows] = ids[best]
            soft[rows] = soft_weight * _onehot(best, len(ids)) + (1 - soft_weight) * y
        out[space] = Assignment(
            label=label,
            intra_label=intra_out,
            soft=soft,
            confidence=soft.max(axis=1),
            extra={"soft_classes": ids.astype(np.int64)},
            attrs={"space": space, **attrs},
        )
    return out


def _cross_transfer(f_v, f_r, initial, s_v, s_r, alpha: float, max_rounds: int, tol: float, on=None):
    """Steps 3 and 5: the heterogeneous affinities from one Sinkhorn on the N_V x N_R kernel, then the
    fixed point in each label space. ``initial`` = (Y_V0, Y_R0, Z_V0, Z_R0); ``on``: None for numpy, else
    the torch device. Returns (Y_V, Y_R, Z_V, Z_R) as numpy arrays, the Sinkhorn's iterations and the
    rounds in the infrared and visible spaces."""
    if on is not None:
        import torch

        f_v, f_r = torch.from_numpy(f_v).to(on), torch.from_numpy(f_r).to(on)
        initial = tuple(torch.from_numpy(x).to(on) for x in initial)
    y_v0, y_r0, z_v0, z_r0 = initial
    kernel = _kernel(f_v, f_r, LAMBDA)  # [N_V, N_R]
    a, b, iterations = sinkhorn_scalings(kernel)
    kb, ka = kernel @ b, kernel.T @ a

    def v_from_r(x):  # A_VR x: visible rows read infrared rows
        return (kernel @ (b[:, None] * x)) / kb[:, None]

    def r_from_v(x):  # A_RV x
        return (kernel.T @ (a[:, None] * x)) / ka[:, None]

    smooth_v, smooth_r = _smoothing(s_v, on), _smoothing(s_r, on)
    y_r, z_v, rounds_r = _transfer(y_r0, z_v0, r_from_v, v_from_r, smooth_r, smooth_v, alpha, max_rounds, tol)
    y_v, z_r, rounds_v = _transfer(y_v0, z_r0, v_from_r, r_from_v, smooth_v, smooth_r, alpha, max_rounds, tol)
    out = (y_v, y_r, z_v, z_r)
    if on is not None:
        out = tuple(x.cpu().numpy() for x in out)
    return out, iterations, rounds_r, rounds_v


def _initial_cross(samples: np.ndarray, centres: np.ndarray) -> np.ndarray:
    kernel = _kernel(samples, centres, LAMBDA)
    _, b, _ = sinkhorn_scalings(kernel)
    return _onehot(np.argmax(kernel * b[None, :], axis=1), len(centres))

"""Clustering for pseudo labels: k-reciprocal Jaccard + DBSCAN (the references' default) or k-means.

``cluster_labels`` is what ``vitool cluster`` and the training engine call. Features are
L2-normalised first, as the references cluster the normalised BNNeck feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitool.errors import VitoolError
from vitool.modality import INFRARED, VISIBLE, l2_normalise

METHODS = ("dbscan", "kmeans")
KMEANS_RESTARTS = 5


@dataclass
class ClusterConfig:
    method: str = "dbscan"  # dbscan | kmeans
    k1: int = 30
    k2: int = 6
    eps: float = 0.6
    min_samples: int = 4
    k: int = 0  # k-means clusters
    joint: bool = False
    seed: int = 0
    device: str = "auto"


def _faiss_gpu(device: str) -> bool:
    """k-means on faiss's GPU index: when the device is not the CPU. faiss is an optional extra, and a
    build with a GPU must match the CUDA of the user's torch, so asking for the GPU without one is a
    one-line error naming what to install; on the CPU (and ``auto`` without a GPU faiss) scikit-learn runs."""
    from vitool.devices import resolve_device

    if resolve_device(device).type == "cpu":  # and --device cuda without a visible GPU is one clear line
        return False
    return _faiss_has_gpu(required=device == "cuda")


def _faiss_has_gpu(required: bool) -> bool:
    try:
        import faiss
    except ImportError:
        faiss = None
    has_gpu = faiss is not None and (faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0) > 0
    if not has_gpu and required:
        raise VitoolError(
            None,
            "k-means on the GPU needs faiss built with GPU support",
            "install the faiss GPU build that matches your CUDA (docs/association.md), or use --device cpu",
        )
    return has_gpu


def knn(features: np.ndarray, k: int, device: str = "auto", return_similarity: bool = False):
    """Indices [N, k] of each unit vector's k nearest neighbours, nearest first, itself included (with
    ``return_similarity``, also their inner products [N, k], which the Jaccard distance reuses).

    The similarity matrix is symmetric, so each block of rows is multiplied only with the rows from its
    own on, and the block serves both sides' candidates: half the products of a full exact search (faiss
    computes all N^2), the same neighbours. ``device`` (auto | cpu | cuda): on CUDA the products and the
    selection run in torch on the GPU (no GPU build of faiss needed); on the CPU the products are numpy's,
    which are faster there than torch's.
    """
    from vitool.devices import resolve_device

    features = np.ascontiguousarray(features, dtype=np.float32)
    k = min(k, len(features))
    rank, sim = _knn_symmetric(features, k, resolve_device(device))
    return (rank, sim) if return_similarity else rank


KNN_BLOCK_ELEMENTS = 1 << 25  # similarities per block of rows (128 MiB)


def _knn_symmetric(x: np.ndarray, k: int, device) -> tuple[np.ndarray, np.ndarray]:
    import torch  # topk: a partial selection, several times faster than numpy's argpartition here

    n = len(x)
    on_cpu = device.type == "cpu"
    x_dev = None if on_cpu else torch.from_numpy(x).to(device)
    best_sim = torch.full((n, k), -torch.inf, device=device)
    best_idx = torch.zeros((n, k), dtype=torch.int64, device=device)

    def merge(rows: slice, sims: torch.Tensor, first_col: int) -> None:
        sim, idx = torch.topk(sims, min(k, sims.shape[1]), dim=1)
        sim = torch.cat([best_sim[rows], sim], dim=1)
        idx = torch.cat([best_idx[rows], idx + first_col], dim=1)
        best_sim[rows], keep = torch.topk(sim, k, dim=1)
        best_idx[rows] = torch.gather(idx, 1, keep)

    block = max(64, KNN_BLOCK_ELEMENTS // max(n, 1))
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        # rows lo:hi against rows lo:n
        sims = torch.from_numpy(x[lo:hi] @ x[lo:].T) if on_cpu else x_dev[lo:hi] @ x_dev[lo:].T
        merge(slice(lo, hi), sims, lo)  # rows of the block: candidates lo:n
        if hi < n:
            merge(slice(hi, n), sims[:, hi - lo :].T, lo)  # later rows: candidates lo:hi
    return best_idx.cpu().numpy(), best_sim.cpu().numpy()


def dbscan_labels(features: np.ndarray, config: ClusterConfig) -> np.ndarray:
    from sklearn.cluster import DBSCAN

    from vitool.cluster.jaccard import jaccard_distance

    features = l2_normalise(features)
    rank, sim = knn(features, max(config.k1, config.k2), config.device, return_similarity=True)
    distance = jaccard_distance(features, rank, config.k1, config.k2, similarity=sim)
    model = DBSCAN(eps=config.eps, min_samples=config.min_samples, metric="precomputed", n_jobs=-1)
    return model.fit_predict(distance).astype(np.int64)


def _kmeans_plus_plus(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii, 2007): faiss seeds at random, which often merges
    two well-separated groups and splits a third."""
    rng = np.random.default_rng(seed)
    centres = [int(rng.integers(len(x)))]
    nearest = ((x - x[centres[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        pick = int(rng.choice(len(x), p=nearest / total)) if total > 0 else int(rng.integers(len(x)))
        centres.append(pick)
        nearest = np.minimum(nearest, ((x - x[pick]) ** 2).sum(axis=1))
    return np.ascontiguousarray(x[centres])


def kmeans_labels(features: np.ndarray, config: ClusterConfig) -> np.ndarray:
    """k-means of the L2-normalised features: the best of KMEANS_RESTARTS k-means++ starts (25 Lloyd
    iterations each), by scikit-learn on the CPU or faiss's GPU index when asked for and installed."""
    if config.k < 1:
        raise VitoolError(None, "--method kmeans needs --k K >= 1", "pass the number of clusters")
    if config.k > len(features):
        raise VitoolError(None, f"--k {config.k} exceeds the {len(features)} samples", "lower --k")
    features = l2_normalise(features)
    starts = [_kmeans_plus_plus(features, config.k, config.seed + attempt) for attempt in range(KMEANS_RESTARTS)]
    if _faiss_gpu(config.device):
        return _faiss_kmeans(features, config, starts)
    from sklearn.cluster import KMeans

    best = None
    for start in starts:  # best of several k-means++ starts, as scikit-learn's n_init
        km = KMeans(config.k, init=start, n_init=1, max_iter=25, tol=0.0, algorithm="lloyd").fit(features)
        if best is None or km.inertia_ < best.inertia_:
            best = km
    return best.predict(features).astype(np.int64)


def _faiss_kmeans(features: np.ndarray, config: ClusterConfig, starts: list[np.ndarray]) -> np.ndarray:
    import faiss

    best = None
    for attempt, start in enumerate(starts):
        km = faiss.Kmeans(
            features.shape[1], config.k, niter=25, seed=config.seed + attempt, gpu=True, min_points_per_centroid=1
        )
        km.train(features, init_centroids=start)
        if best is None or km.obj[-1] < best.obj[-1]:  # the objective is the sum of squared distances
            best = km
    _, assigned = best.index.search(features, 1)
    return assigned[:, 0].astype(np.int64)


def cluster_labels(features: np.ndarray, modality: np.ndarray, config: ClusterConfig) -> np.ndarray:
    """Cluster ids, -1 for outliers. Per modality (default), ids of the two modalities never collide."""
    run = dbscan_labels if config.method == "dbscan" else kmeans_labels
    if config.method not in METHODS:
        raise VitoolError(None, f"unknown clustering method '{config.method}'", f"use {' or '.join(METHODS)}")
    if config.joint:
        return run(features, config)
    labels = np.full(len(features), -1, dtype=np.int64)
    offset = 0
    for m in (VISIBLE, INFRARED):
        rows = np.flatnonzero(modality == m)
        if len(rows) == 0:
            continue
        own = run(features[rows], config)
        labels[rows] = np.where(own >= 0, own + offset, -1)
        offset += int(own.max()) + 1 if (own >= 0).any() else 0
    return labels

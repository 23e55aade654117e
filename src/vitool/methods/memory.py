"""Cluster memories of the unsupervised methods (Dai et al., "Cluster Contrast for Unsupervised Person
Re-Identification", ACCV 2022): one unit-length prototype per cluster, ClusterNCE logits against them, and
the momentum updates of Cluster-Contrast (one step per sample), PCLHD (the mean, the hardest member).

Memories are plain tensors outside autograd, moved explicitly after the optimiser step, never inside a
backward pass as the released code does, so a loss on another modality's memory never writes into it
by accident; PCLHD's ``pclhd_released_memory_order`` (its default) gives the released order back
(``ReadAfterWrite``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vitool.modality import INFRARED, VISIBLE

MODALITIES = (VISIBLE, INFRARED)


class ClusterMemory:
    """One unit-length prototype per cluster (rows 0..K-1) with ClusterNCE logits and momentum updates.

    ``momentum`` weighs the old prototype: p <- m p + (1 - m) x, then p is renormalised (m = 0.1 in
    every reference, so a prototype is mostly the latest features)."""

    def __init__(self, prototypes: torch.Tensor, temperature: float = 0.05, momentum: float = 0.1) -> None:
        self.prototypes = F.normalize(prototypes.float(), dim=1)
        self.temperature, self.momentum = temperature, momentum

    def __len__(self) -> int:
        return len(self.prototypes)

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return feats @ self.prototypes.t() / self.temperature  # updated only after the step (after_step)

    def _blend(self, rows: torch.Tensor, x: torch.Tensor) -> None:
        m = self.momentum
        self.prototypes[rows] = F.normalize(m * self.prototypes[rows] + (1 - m) * x, dim=1)

    @torch.no_grad()
    def update_sequential(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Cluster-Contrast's "CM": one momentum step per sample, in batch order. Samples of different
        clusters touch different prototypes, so round k moves the k-th sample of every cluster at once: the
        same steps in the same order per prototype, in as many rounds as a cluster has samples in the batch,
        with one host sync per call instead of one per sample."""
        for rows, clusters in occurrence_rounds(labels):
            self._blend(clusters, feats[rows].float())

    @torch.no_grad()
    def update_mean(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """One momentum step per cluster with the mean of its batch features (PCLHD's centroids)."""
        keep = labels >= 0
        ids, inverse = torch.unique(labels[keep], return_inverse=True)
        if not len(ids):
            return
        sums = torch.zeros(len(ids), feats.shape[1], device=feats.device).index_add_(0, inverse, feats[keep].float())
        self._blend(ids, sums / torch.bincount(inverse, minlength=len(ids))[:, None])

    @torch.no_grad()
    def update_hardest(self, feats: torch.Tensor, labels: torch.Tensor, centroids: ClusterMemory) -> None:
        """One momentum step per cluster with its batch feature least similar to the cluster's centroid
        (PCLHD's hard prototype, eq. 6 and 14; the released code's ``CMhard``); the first such member on
        ties, as argmin. All clusters in one step: each touches its own prototype."""
        keep = torch.nonzero(labels >= 0).squeeze(1)
        if not len(keep):
            return
        feats, labels = feats[keep].float(), labels[keep]
        sims = (feats * centroids.prototypes[labels]).sum(dim=1)
        ids, inverse = torch.unique(labels, return_inverse=True)
        lowest = torch.full((len(ids),), float("inf"), device=feats.device).scatter_reduce(0, inverse, sims, "amin")
        position = torch.arange(len(labels), device=feats.device)
        is_lowest = sims == lowest[inverse]
        first = torch.full((len(ids),), len(labels), device=feats.device).scatter_reduce(
            0, inverse, torch.where(is_lowest, position, len(labels)), "amin"
        )
        self._blend(ids, feats[first])


def occurrence_rounds(labels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batch positions of each cluster's 1st, 2nd, ... sample (labels -1 left out), as (positions,
    clusters) per round, in batch order within a cluster; computed on the host from one copy of ``labels``."""
    import numpy as np

    values = labels.detach().cpu().numpy()
    kept = np.flatnonzero(values >= 0)
    if not len(kept):
        return []
    order = kept[np.argsort(values[kept], kind="stable")]  # by cluster, batch order inside each
    ordered = values[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    occurrence = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    device = labels.device
    rounds = []
    for k in range(int(occurrence.max()) + 1):
        rows = np.sort(order[occurrence == k])
        rounds.append((torch.as_tensor(rows, device=device), torch.as_tensor(values[rows], device=device)))
    return rounds


class ReadAfterWrite:
    """A memory as the released code's backward reads it when another term's backward wrote into it first
    (Cluster-Contrast's memories move inside ``backward``): the logits of the memory before the write, the
    forward's, and the gradient through the memory after it."""

    def __init__(self, before: ClusterMemory, after: torch.Tensor) -> None:
        self.before, self.after = before, after

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        change = (self.before.prototypes - self.after).t()
        return (feats @ self.after.t() + feats.detach() @ change) / self.before.temperature


def contrast_loss(feats: torch.Tensor, memory: ClusterMemory | ReadAfterWrite, labels: torch.Tensor) -> torch.Tensor:
    """ClusterNCE: cross-entropy of the features' cosine logits against the memory (rows with label
    -1 are left out; 0 when none is left)."""
    keep = labels >= 0
    if not keep.any():
        return feats.sum() * 0.0
    return F.cross_entropy(memory.logits(feats[keep]), labels[keep])

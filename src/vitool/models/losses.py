"""Losses shared by several methods: AGW's weighted regularised triplet and the batch-hard triplet."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _softmax_weights(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    peak = (values * mask).max(dim=1, keepdim=True).values
    e = torch.exp(values - peak) * mask
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


def weighted_regularized_triplet(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AGW's WRT (Ye et al., TPAMI'21): softmax-weighted positive and negative distances, soft margin.

    Distances are Euclidean over the whole batch (both modalities, so cross-modal pairs count);
    positives are weighted by softmax(+d), negatives by softmax(-d); loss = mean log(1 + exp(d_p - d_n)).
    """
    dist = torch.cdist(features, features)
    positive = (labels[:, None] == labels[None, :]).float()
    negative = 1.0 - positive
    d_pos = (dist * positive * _softmax_weights(dist * positive, positive)).sum(dim=1)
    d_neg = (dist * negative * _softmax_weights(-dist * negative, negative)).sum(dim=1)
    return F.softplus(d_pos - d_neg).mean()


def batch_hard_triplet(features: torch.Tensor, labels: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """The batch-hard triplet (Hermans et al., 2017): per anchor, its farthest positive and nearest
    negative, loss = mean max(0, d_p - d_n + margin); Euclidean distances. OTLA uses it within each
    modality with margin 0.3. Anchors without a negative in the batch are skipped."""
    dist = torch.cdist(features, features)
    same = labels[:, None] == labels[None, :]
    has_negative = (~same).any(dim=1)
    if not has_negative.any():
        return features.sum() * 0.0
    d_pos = (dist * same).max(dim=1).values
    d_neg = dist.masked_fill(same, float("inf")).min(dim=1).values
    return F.relu(d_pos - d_neg + margin)[has_negative].mean()

"""The fully supervised AGW baseline (Ye et al., TPAMI 2021, arXiv
2001.04193; mangye16/Cross-Modal-Re-ID-baseline), the upper bound every
label-efficient method is compared to: identity cross-entropy on the BNNeck logits plus the weighted
regularised triplet on the pooled features, over the visible and infrared halves together, with the
true identities of both modalities."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vitool.methods.contract import EpochLabels, Method, TrainingContext
from vitool.models.losses import weighted_regularized_triplet


class Supervised(Method):
    name = "supervised"

    def __init__(self, pids: np.ndarray) -> None:
        ids, self.labels = np.unique(pids, return_inverse=True)
        self.classes = len(ids)

    def num_classes(self) -> int:
        return self.classes

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        return EpochLabels(self.labels)

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(out["logits"].float(), labels)
        wrt = weighted_regularized_triplet(out["pre_bn"].float(), labels)
        return ce + wrt, {"ce": float(ce.detach()), "triplet": float(wrt.detach())}

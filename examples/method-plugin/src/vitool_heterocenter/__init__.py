"""A complete small vitool method in its own package: identity cross-entropy plus the hetero-center loss
of Zhu et al., "Hetero-Center Loss for Cross-Modality Person Re-Identification", Neurocomputing 2020,
which pulls the visible and the infrared centre of each identity in a batch together.

Installed (``pip install examples/method-plugin``), it adds ``vitool train --method heterocenter``
with one option of its own, ``hc_weight`` (``--set hc_weight=0.5`` or a TOML key).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vitool.methods.contract import EpochLabels, Method, TrainingContext


@dataclass
class HeteroCenterOptions:
    """This method's own configuration keys; a bad value is a ValueError, which vitool shows as one line."""

    hc_weight: float = 0.5  # weight of the hetero-center term

    def __post_init__(self) -> None:
        if self.hc_weight < 0:
            raise ValueError(f"hc_weight = {self.hc_weight}: use a value >= 0")


class HeteroCenter(Method):
    """Fully supervised: identities are linked across modalities, so both halves share one label space."""

    name = "heterocenter"
    batch_shape = (8, 4)  # identities per batch, images per identity and modality

    def __init__(self, samples, options: HeteroCenterOptions) -> None:
        ids, self.labels = np.unique([s.pid for s in samples], return_inverse=True)
        self.classes = len(ids)
        self.options = options

    def num_classes(self) -> int:
        return self.classes  # the network gets a classifier over the training identities

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        return EpochLabels(self.labels)  # the same labels every epoch: nothing to re-estimate

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ce = F.cross_entropy(out["logits"].float(), labels)
        feats = out["pre_bn"].float()
        terms = []
        for identity in labels.unique():
            visible = feats[(labels == identity) & (modality == 0)]
            infrared = feats[(labels == identity) & (modality == 1)]
            if len(visible) and len(infrared):
                terms.append((visible.mean(0) - infrared.mean(0)).pow(2).sum())
        centre = torch.stack(terms).mean() if terms else feats.sum() * 0
        total = ce + self.options.hc_weight * centre
        return total, {"ce": float(ce.detach()), "hetero_center": float(centre.detach())}


def register() -> None:
    """The entry point: vitool calls it once, when it first looks its methods up."""
    from vitool.methods.registry import register as add

    add(
        "heterocenter",
        lambda setup, samples, options: HeteroCenter(samples, options),
        "an example plugin: AGW's cross-entropy plus the hetero-center loss (examples/method-plugin)",
        options=HeteroCenterOptions,
    )

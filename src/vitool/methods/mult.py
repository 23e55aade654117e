"""MULT: modality-unified label transfer with alternating modality-invariant representation learning
and online cross-memory label refinement (He, Cheng, Wang, Gao, IJCV 2024, arXiv
2402.00672; released code FranklinLingfeng/code_for_MULT),
`vitool train --method mult`.

Stage one (``dcl_epochs``, 40): the DCL baseline (vitool.methods.contrast). Cross stage, every epoch:
re-cluster each modality, then MULT's label transfer through ``vitool.assign.assign("mult", ...)``
(the function behind `vitool assign-labels --method mult`, vitool/assign/mult.py), in the label space
of the epoch: the visible one on the first cross epoch and every second after it, the infrared one in
between (AMIRL's alternation, §5.3). In space S, with O the other modality, the transfer gives:
y~_s, the soft label of each S image among S's clusters (0.7 one-hot + 0.3 transfer), z~_o the soft
label of each O image among S's clusters (its cross label cm_o = argmax), and the refined hard labels
y^ of both modalities, for every image: outliers get a label too.

The transfer runs in both label spaces every epoch, as released; the batch takes 6 clusters of each
space (``StageThreeSampler``): S clusters with S images by y^_s and O images by cm_o, O clusters with O
images by y^_o and S images by their cross label into O's space. Every image of a batch keeps all its
labels, whichever half drew it.

Memories (ClusterNCE, temperature 0.05, momentum 0.1, re-initialised each epoch from the DBSCAN
centroids): M_S and M_O, one per modality (updated with y^); M_A, the aggregated memory of space S
(updated with the infrared images' labels first, then the visible ones', as the released backward
runs); M_cm, S's cross memory (updated with O images by cm_o).

Losses, all weights 1, on soft targets (0.7 one-hot + 0.3 transfer) as released:
- L_ms = CE(s M_S, y~_s) + CE(o M_O, y~_o) + CE(o M_cm, z~_o)
- L_ma = CE(s M_A, y~_s) + CE(o M_A, z~_o)
- L_oclr (§5.4) = SCE(s M_A, s M_S) + SCE(s M_A, s M_cm) + SCE(o M_A, o M_cm) + SCE(o M_A, o M_S), with
  SCE(p, q) = CE(p, softmax(q / 0.2)); the target is not detached, as in the released code.

Our decisions (docs/training.md): one view per visible image, so the released code's two-view terms
(view a against view v) become one term each; the alternation counts from the first cross epoch.
``association`` swaps MULT's transfer for the Hungarian matching or OT (then the targets are one-hot;
OT ends in the visible space only, so its batches hold visible-space clusters only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vitool.methods.association import associate_spaces
from vitool.methods.contract import RunSetup, TrainingContext, check_options
from vitool.methods.contrast import ClusterContrast, CrossStageOptions
from vitool.methods.memory import ClusterMemory
from vitool.modality import INFRARED, MODALITY_OF, VISIBLE


def sharpened_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor, sharpen: float) -> torch.Tensor:
    """OCLR's SCE(p, q): CE of ``logits`` against softmax(``target_logits`` / sharpen), target attached."""
    return F.cross_entropy(logits, torch.softmax(target_logits / sharpen, dim=1))  # probability targets


@dataclass
class MULTOptions(CrossStageOptions):
    """MULT's own keys, beside DCL's and the cross stage's (``mult_alpha``, ``mult_soft_weight``)."""

    mult_sharpen: float = 0.2  # OCLR's target temperature on the memory logits
    mult_oclr: bool = True  # false drops OCLR (the ablation row "+ MULT's transfer" without it)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"mult_sharpen": (self.mult_sharpen > 0, "a value > 0")})


class MULT(ClusterContrast):
    name = "mult"
    two_stage = True
    stage2_independent = False  # identity-aligned batches in the spaces' clusters
    default_association = "mult"
    default_dcl_epochs = 40
    batch_shape = (12, 12)  # clusters x images per modality (the released 12 x 12)
    sampler_style = "identity"  # the released sampler.py draws clusters afresh, no camera preference

    def __init__(self, setup: RunSetup, samples, options: MULTOptions) -> None:
        super().__init__(setup, samples, options)
        self.strong_augmentation_epochs = self.dcl_epochs  # the released DCL stage's stronger augmentation
        self.space_modality = VISIBLE  # the modality whose clusters are this epoch's label space S
        self.refined = self.intra.copy()  # y^ of every image (global ids)
        # per label space (keyed by the modality whose clusters it is): every image's cluster in it (its
        # refined label, or the other modality's cross label; -1: none) and soft label over its clusters
        self.space_labels: dict[int, np.ndarray] = {}
        self.space_soft: dict[int, torch.Tensor] = {}
        self.aggregated: ClusterMemory | None = None
        self.cross_memory: ClusterMemory | None = None
        self._on_device: dict[tuple[int, torch.device], torch.Tensor] = {}

    def adjust_model(self, model_config) -> None:
        super().adjust_model(model_config)
        model_config.non_local = False  # MULT's network has no non-local blocks

    def stage2_labels(self, context: TrainingContext, features: np.ndarray) -> np.ndarray:
        cfg = self.options
        space = "visible" if (self.epoch - self.dcl_epochs) % 2 == 0 else "infrared"
        results = associate_spaces(
            cfg.association,
            features,
            self.modality,
            self.intra,
            cfg,
            self.pid,
            self.device.type,
            self.setup.seed,
        )
        first = results.get(space, results["visible"])  # ot ends in the visible space only
        self.space_modality = MODALITY_OF[first.attrs["space"]]
        self.refined = first.intra_label if first.intra_label is not None else self.intra
        self.space_labels, self.space_soft, self._on_device = {}, {}, {}
        for result in results.values():
            m = MODALITY_OF[result.attrs["space"]]
            self.space_labels[m] = result.label
            self.space_soft[m] = torch.as_tensor(self._soft(result, m), device=self.device)
        centres = self.memories[self.space_modality].prototypes
        self.aggregated, self.cross_memory = self.new_memory(centres.clone()), self.new_memory(centres.clone())
        self._report |= self.association_report(first.label, self.space_modality)
        return self.space_labels[self.space_modality]

    def stage2_second_space(self) -> np.ndarray | None:
        other = INFRARED if self.space_modality == VISIBLE else VISIBLE
        return self.space_labels.get(other)  # None with OT, which ends in the visible space only

    def _soft(self, result, m: int) -> np.ndarray:
        """Every image's soft label over modality ``m``'s clusters (one-hot without soft labels; 0 for -1)."""
        width = len(self.memories[m])
        soft = np.zeros((len(result.label), width), dtype=np.float32)
        if result.soft is not None:
            soft[:, self.local(result.extra["soft_classes"], m)] = result.soft
        else:
            local = self.local(result.label, m)
            has = local >= 0
            soft[np.flatnonzero(has), local[has]] = 1.0
        return soft

    def _space_targets(self, m: int, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch rows' cluster in space ``m`` as rows of its memories (-1: none) and their soft labels."""
        key = (m, rows.device)
        if key not in self._on_device:  # copied to the device once per epoch, not every step
            labels = self.space_labels.get(m, np.where(self.modality == m, self.refined, -1))
            self._on_device[key] = torch.as_tensor(self.local(labels, m), device=rows.device)
        local = self._on_device[key][rows]
        if m in self.space_soft:
            return local, self.space_soft[m][rows]
        return local, F.one_hot(local.clamp_min(0), len(self.memories[m])).float() * (local >= 0)[:, None]

    def stage2_loss(self, out, feats, labels, modality, rows) -> dict[str, torch.Tensor]:
        cfg, space_modality = self.options, self.space_modality
        other = INFRARED if space_modality == VISIBLE else VISIBLE
        rows = rows.to(feats.device)
        s, o = modality == space_modality, modality == other
        in_s, soft_in_s = self._space_targets(space_modality, rows)  # y^_s / cm_o and y~_s / z~_o
        in_o, soft_in_o = self._space_targets(other, rows)  # y^_o and y~_o for O's images
        s, o = s & (in_s >= 0), o & (in_s >= 0)
        o_own = (modality == other) & (in_o >= 0)
        mem_s, mem_o, agg, cross = (
            self.memories[space_modality],
            self.memories[other],
            self.aggregated,
            self.cross_memory,
        )
        own, aggregated, crossed = mem_s.logits(feats), agg.logits(feats), cross.logits(feats)  # one pass each
        zero = feats.sum() * 0.0

        def ce(logits, target, keep):
            return F.cross_entropy(logits[keep], target[keep]) if keep.any() else zero

        ms = ce(own, soft_in_s, s) + ce(crossed, soft_in_s, o) + ce(mem_o.logits(feats), soft_in_o, o_own)
        ma = ce(aggregated, soft_in_s, s) + ce(aggregated, soft_in_s, o)
        sharpen = cfg.mult_sharpen
        oclr = zero
        for keep, target in ((s, own), (s, crossed), (o, crossed), (o, own)):
            if keep.any() and cfg.mult_oclr:
                oclr = oclr + sharpened_cross_entropy(aggregated[keep], target[keep], sharpen)
        return {"modality_specific": ms, "modality_aggregated": ma, "oclr": oclr}

    def update_memories(self, feats, labels, modality, rows) -> None:
        if not self.stage2:
            return super().update_memories(feats, labels, modality, rows)
        other = INFRARED if self.space_modality == VISIBLE else VISIBLE
        in_s, _ = self._space_targets(self.space_modality, rows)
        for m in (VISIBLE, INFRARED):  # M_V and M_R with each modality's refined labels
            own = modality == m
            self.memories[m].update_sequential(feats[own], self._space_targets(m, rows)[0][own])
        o = modality == other
        self.cross_memory.update_sequential(feats[o], in_s[o])
        for m in (INFRARED, VISIBLE):  # M_A: the infrared images first, as the released backward runs
            own = modality == m
            self.aggregated.update_sequential(feats[own], in_s[own])

    def state_dict(self) -> dict[str, Any]:
        extra = {}
        if self.aggregated is not None:
            extra = {"aggregated": self.aggregated.prototypes.cpu(), "cross_memory": self.cross_memory.prototypes.cpu()}
        return {
            **super().state_dict(),
            **extra,
            "space": self.space_modality,
            "refined": self.refined,
            "space_labels": self.space_labels,
            "space_soft": {m: t.cpu() for m, t in self.space_soft.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "aggregated" in state:
            self.aggregated = self.new_memory(state["aggregated"])
            self.cross_memory = self.new_memory(state["cross_memory"])
        self.space_modality, self.refined = state["space"], np.asarray(state["refined"])
        self.space_labels = {m: np.asarray(v) for m, v in state.get("space_labels", {}).items()}
        self.space_soft = {m: t.to(self.device) for m, t in state.get("space_soft", {}).items()}
        self._on_device = {}

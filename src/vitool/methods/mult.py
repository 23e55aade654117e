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

Memories (ClusterNCE, temperature 0.05, momentum 0.1, re-initialised each epoch from the DBSCAN
centroids): M_S and M_O, one per modality (updated with y^); M_A, the aggregated memory of space S
(updated with S images by y^_s and O images by cm_o); M_cm, S's cross memory (updated with O images
by cm_o). The batch takes the same S clusters in both modalities (identity-aligned by cross labels).

Losses, all weights 1:
- L_ms = CE(s M_S, y~_s) + CE(o M_O, y^_o) + CE(o M_cm, z~_o)
- L_ma = CE(s M_A, y~_s) + CE(o M_A, z~_o)
- L_oclr (§5.4) = SCE(s M_A, s M_S) + SCE(s M_A, s M_cm) + SCE(o M_A, o M_cm) + SCE(o M_A, o M_S), with
  SCE(p, q) = CE(p, softmax(q / 0.2)); the target is not detached, as in the released code.

Our decisions (docs/training.md): one view per visible image, so the released code's two-view terms
(view a against view v) become one term each; the modality-specific term of O reads its hard refined
label (the released code's soft y~_o comes from the other space's transfer, which we run only in that
space's epoch); the alternation counts from the first cross epoch. ``association`` swaps MULT's
transfer for the Hungarian matching or OT (then the targets are one-hot).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vitool.methods.association import associate
from vitool.methods.contract import TrainingContext, check_options
from vitool.methods.contrast import ClusterContrast, CrossStageOptions
from vitool.methods.memory import ClusterMemory
from vitool.modality import INFRARED, VISIBLE


def sharpened_cross_entropy(logits: torch.Tensor, target_logits: torch.Tensor, sharpen: float) -> torch.Tensor:
    """OCLR's SCE(p, q): CE of ``logits`` against softmax(``target_logits`` / sharpen), target attached."""
    return F.cross_entropy(logits, torch.softmax(target_logits / sharpen, dim=1))  # probability targets


@dataclass
class MULTOptions(CrossStageOptions):
    """MULT's own key, beside DCL's and the cross stage's (``mult_alpha``, ``mult_soft_weight``)."""

    mult_sharpen: float = 0.2  # OCLR's target temperature on the memory logits

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self, {"mult_sharpen": (self.mult_sharpen > 0, "a value > 0")})


class MULT(ClusterContrast):
    name = "mult"
    two_stage = True
    stage2_independent = False  # identity-aligned batches in the space's clusters
    default_dcl_epochs = 40
    batch_shape = (12, 12)  # clusters x images per modality (the released 12 x 12)

    def __init__(self, config, samples, options: MULTOptions) -> None:
        super().__init__(config, samples, options)
        self.space_modality = VISIBLE  # the modality whose clusters are this epoch's label space S
        self.refined = self.intra.copy()  # y^ of every image (global ids)
        self.target = self.intra.copy()  # the space's cluster of every image (y^_s for S, cm_o for O)
        self.soft = torch.zeros(len(samples), 1)  # y~_s / z~_o over the space's clusters
        self.aggregated: ClusterMemory | None = None
        self.cross_memory: ClusterMemory | None = None

    def adjust_model(self, config) -> None:
        super().adjust_model(config)
        config.non_local = False  # MULT's network has no non-local blocks

    def stage2_labels(self, context: TrainingContext, features: np.ndarray) -> np.ndarray:
        cfg = self.options
        space = "visible" if (self.epoch - self.dcl_epochs) % 2 == 0 else "infrared"
        result = associate(
            cfg.association or "mult", features, self.modality, self.intra, space, cfg, self.pid, self.device.type
        )
        self.space_modality = VISIBLE if result.attrs["space"] == "visible" else INFRARED
        self.refined = result.intra_label if result.intra_label is not None else self.intra
        self.target = result.label
        width = len(self.memories[self.space_modality])
        if result.soft is not None:
            columns = self.local(result.extra["soft_classes"], self.space_modality)
            soft = np.zeros((len(self.target), width), dtype=np.float32)
            soft[:, columns] = result.soft
        else:
            soft = np.eye(width, dtype=np.float32)[np.maximum(self.local(self.target, self.space_modality), 0)]
        self.soft = torch.as_tensor(soft, device=self.device)
        centres = self.memories[self.space_modality].prototypes
        self.aggregated, self.cross_memory = self.new_memory(centres.clone()), self.new_memory(centres.clone())
        self._report |= self.association_report(result.label, self.space_modality)
        return self.target

    def stage2_loss(self, out, feats, labels, modality, rows) -> dict[str, torch.Tensor]:
        cfg, space_modality = self.options, self.space_modality
        other = INFRARED if space_modality == VISIBLE else VISIBLE
        rows = rows.to(feats.device)
        s, o = modality == space_modality, modality == other
        f_o = feats[o]
        soft = self.soft[rows]
        soft_s, soft_o = soft[s], soft[o]
        _, _, y_o = self._targets(labels, modality, rows)
        mem_s, mem_o, agg, cross = (
            self.memories[space_modality],
            self.memories[other],
            self.aggregated,
            self.cross_memory,
        )
        own, aggregated, crossed = mem_s.logits(feats), agg.logits(feats), cross.logits(feats)  # one pass each
        s_own, s_agg, s_cross = own[s], aggregated[s], crossed[s]
        o_own, o_agg, o_cross = own[o], aggregated[o], crossed[o]
        keep = y_o >= 0
        ms = F.cross_entropy(s_own, soft_s) + F.cross_entropy(o_cross, soft_o)  # soft targets, as released
        if keep.any():
            ms = ms + F.cross_entropy(mem_o.logits(f_o[keep]), y_o[keep])
        ma = F.cross_entropy(s_agg, soft_s) + F.cross_entropy(o_agg, soft_o)
        sharpen = cfg.mult_sharpen
        oclr = (
            sharpened_cross_entropy(s_agg, s_own, sharpen)
            + sharpened_cross_entropy(s_agg, s_cross, sharpen)
            + sharpened_cross_entropy(o_agg, o_cross, sharpen)
            + sharpened_cross_entropy(o_agg, o_own, sharpen)
        )
        return {"modality_specific": ms, "modality_aggregated": ma, "oclr": oclr}

    def _targets(self, labels, modality, rows):
        """Per image of a batch: S images' y^_s and O images' cm_o (both the sampler's labels, as rows
        of S's memories) and O images' y^_o (rows of O's memory), -1 where an image has none."""
        other = INFRARED if self.space_modality == VISIBLE else VISIBLE
        in_space = labels - self.offset[self.space_modality]
        refined = torch.as_tensor(self.refined, device=labels.device)[rows][modality == other]
        y_o = torch.where(refined >= 0, refined - self.offset[other], -1)
        return in_space[modality == self.space_modality], in_space[modality == other], y_o

    def update_memories(self, feats, labels, modality, rows) -> None:
        if not self.stage2:
            return super().update_memories(feats, labels, modality, rows)
        other = INFRARED if self.space_modality == VISIBLE else VISIBLE
        y_s, cm_o, y_o = self._targets(labels, modality, rows)
        f_s, f_o = feats[modality == self.space_modality], feats[modality == other]
        self.memories[self.space_modality].update_sequential(f_s, y_s)
        self.memories[other].update_sequential(f_o, y_o)
        self.aggregated.update_sequential(f_s, y_s)
        self.aggregated.update_sequential(f_o, cm_o)
        self.cross_memory.update_sequential(f_o, cm_o)

    def state_dict(self) -> dict[str, Any]:
        extra = {}
        if self.aggregated is not None:
            extra = {"aggregated": self.aggregated.prototypes.cpu(), "cross_memory": self.cross_memory.prototypes.cpu()}
        return {
            **super().state_dict(),
            **extra,
            "space": self.space_modality,
            "refined": self.refined,
            "target": self.target,
            "soft": self.soft.cpu(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "aggregated" in state:
            self.aggregated = self.new_memory(state["aggregated"])
            self.cross_memory = self.new_memory(state["cross_memory"])
        self.space_modality, self.refined = state["space"], np.asarray(state["refined"])
        self.target = np.asarray(state["target"])
        self.soft = state["soft"].to(self.device)

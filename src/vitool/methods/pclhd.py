"""Progressive contrastive learning with hard and dynamic prototypes (Shi, Yin et al., "Learning
Commonality, Divergence and Variety for USVI-ReID", NeurIPS 2024, arXiv 2402.19026; released code
XiangboYin/PCLHD), `vitool train --method pclhd`.

Stage 1 (epochs before E_CPCL = ``dcl_epochs``, 50): CPCL, eq. 3-5, the centroid-prototype ClusterNCE
of each modality, which is the DCL baseline (vitool.methods.contrast).

Stage 2, every epoch after re-clustering:
- HPCL (eq. 6-15): a hard memory per modality, updated with momentum 0.1 by the batch member farthest
  from the centroid prototype (eq. 14; the released ``CMhard``); the centroid memory keeps its batch-mean
  updates. It starts each epoch at the centroids, as released (``pclhd_hard_init = "centroid"``: a hard
  prototype becomes a hard member once its cluster has been in a batch); ``"farthest"`` starts it at each
  cluster's member farthest from its centroid, as eq. 6 writes. The memory loss is the released one:
  0.5 CE(hard) + 0.5 max(0, CE(centroid) - 0.2) per modality, which eq. 15 writes without the centroid
  hinge (``pclhd_centroid_hinge = false``: CE(hard) alone, weighted by lambda).
- DPCL (eq. 16-22): a momentum encoder (eq. 16) copied from the online one at the stage switch and moved
  after every step. The paper's beta 0.999 is a half-life of 693 steps, 6.93% of the released 50 x 200-step
  stage 2; vitool keeps that share (``pclhd_ema_half_life``) in a stage of any length, so a 120-step CPU
  stage 2 gets beta 0.920 (``pclhd_ema_half_life = 0``: ``pclhd_momentum_encoder`` literally). The
  momentum encoder runs in train mode on every stage-2 batch, as released, so its BN statistics are its
  own (estimated with its own weights), not the online model's. Each epoch, M = ``pclhd_dynamic_samples``
  members of each cluster drawn with replacement (eq. 17-18) and encoded by it. For a query, the positive prototype is
  its cluster's dynamic sample least similar to it and each negative the most similar sample of that
  cluster (eq. 19).
- Loss (eq. 23): lambda HPCL + (1 - lambda) DPCL, lambda 0.5, plus PGM's cross-modal term (the paper
  "uses PGM to aggregate cross-modality memory"): 0.25 x the same memory loss of one modality's features
  against the other's memories, with Hungarian partners of its clusters (released: 0.125 CE(hard) +
  0.125 hinge), the direction alternating by epoch (stage-2 epochs 0, 2, ...: visible -> infrared
  memory). ``association`` swaps the Hungarian matching for MULT's transfer or OT.

Our decisions where the paper and the released code disagree (docs/training.md; the memory loss and the
hard memory's start above follow the released code): the DPCL query is the
*online* feature, so the term trains the encoder (eq. 20 writes phi_m(v), and the released code feeds
momentum-encoder features computed without gradient, so its term has no effect, §4.3);
``pclhd_released_dynamic = true`` reproduces that. Stage 1 is the paper's centroid-only CPCL (the
released stage 1 already mixes in hard prototypes with a 0.2 hinge). The released code's extra
optimiser step on joint V+R clusters is not in the paper and is left out. The online encoder is the
one evaluated and checkpointed (the paper tests the momentum encoder; it is saved in the method state).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitool.methods.association import associate
from vitool.methods.contract import (
    EpochLabels,
    EpochReport,
    RunPlan,
    RunSetup,
    TrainingContext,
    check_options,
    epoch_seed,
)
from vitool.methods.contrast import ClusterContrast, CrossStageOptions
from vitool.methods.memory import ClusterMemory, ReadAfterWrite, contrast_loss
from vitool.modality import INFRARED, MODALITY_OF, VISIBLE


def dynamic_logits(queries: torch.Tensor, samples: torch.Tensor, labels: torch.Tensor, temperature: float):
    """Eq. 19-20: logits [B, K] of queries [B, d] against M dynamic samples per cluster [K, M, d]: for
    the query's own cluster the least similar sample, for every other cluster the most similar one."""
    sims = torch.einsum("bd,kmd->bkm", queries, samples) / temperature
    own = F.one_hot(labels, len(samples)).bool()
    return torch.where(own, sims.min(dim=2).values, sims.max(dim=2).values)


def farthest_members(features: np.ndarray, local: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Eq. 6: per cluster (rows of ``centres``), the feature of its member least similar to the centre."""
    keep = np.flatnonzero(local >= 0)
    sims = np.einsum("ij,ij->i", features[keep], centres[local[keep]])
    order = np.lexsort((sims, local[keep]))  # by cluster, then most distant first
    clusters = local[keep][order]
    first = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1]])
    out = np.empty_like(centres)
    out[clusters[first]] = features[keep][order][first]
    return out


def hard_memory_start(init: str, features: np.ndarray, local: np.ndarray, centroids: torch.Tensor) -> torch.Tensor:
    """The hard memory at the start of an epoch: the centroids themselves (``centroid``, the released
    ``CMhard``, whose memory is the centroids twice), or each cluster's member farthest from its centroid
    (``farthest``, eq. 6)."""
    if init == "farthest":
        return torch.as_tensor(farthest_members(features, local, centroids.cpu().numpy()), device=centroids.device)
    return centroids.clone()


EMA_BETA = 0.999  # eq. 16, released code
EMA_REFERENCE_STEPS = 50 * 200  # the released SYSU-MM01 stage 2: 50 epochs of 200 steps
EMA_HALF_LIFE = round(math.log(0.5) / math.log(EMA_BETA) / EMA_REFERENCE_STEPS, 4)  # 0.0693 of stage 2


def write_memories(hard: ClusterMemory, centroids: ClusterMemory, feats: torch.Tensor, labels: torch.Tensor) -> None:
    """One stage-2 write: the hard prototype first (against the centroid before its update), then the centroid."""
    hard.update_hardest(feats, labels, centroids)
    centroids.update_mean(feats, labels)


def ema_beta(half_life_steps: float) -> float:
    """The per-step momentum whose weight on the old encoder halves every ``half_life_steps`` steps."""
    return 0.5 ** (1.0 / max(half_life_steps, 1e-9))


class PCLHDNet(nn.Module):
    """The online model and its momentum encoder (no gradient; moved by ``PCLHD.after_step``)."""

    def __init__(self, model: nn.Module, released_dynamic: bool) -> None:
        super().__init__()
        self.model = model
        self.ema = copy.deepcopy(model).requires_grad_(False)
        self.released_dynamic, self.stage2 = released_dynamic, False

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(images, modality)
        if self.stage2 and self.training:  # as released: the momentum encoder sees every batch in train mode,
            with torch.no_grad():  # so its BN running statistics follow its own weights
                feat_ema = self.ema(images, modality)["feat"]
            if self.released_dynamic:  # the released DPCL query: momentum features, no gradient
                out["feat_ema"] = feat_ema
        return out


@dataclass
class PCLHDOptions(CrossStageOptions):
    """PCLHD's own keys, beside DCL's and the cross stage's."""

    pclhd_lambda: float = 0.5  # weight of HPCL; DPCL gets 1 - lambda
    # the momentum encoder's half-life as a share of stage 2's steps (EMA_HALF_LIFE: beta 0.999 over the
    # released 50 x 200-step stage 2); 0: pclhd_momentum_encoder is the beta, literally
    pclhd_ema_half_life: float = EMA_HALF_LIFE
    pclhd_momentum_encoder: float = EMA_BETA  # with pclhd_ema_half_life = 0: the beta of eq. 16
    pclhd_dynamic_samples: int = 16  # M, dynamic samples per cluster and epoch
    pclhd_released_dynamic: bool = False  # true: the released DPCL (momentum-encoder queries: no gradient)
    pclhd_cross_weight: float = 0.25  # PGM's cross-modal term
    # the memory loss: CE(hard) + max(0, CE(centroid) - margin), as released; false: CE(hard) alone (eq. 15)
    pclhd_centroid_hinge: bool = True
    pclhd_centroid_margin: float = 0.2  # the hinge's margin
    pclhd_hard_init: str = "centroid"  # the hard memory's start each epoch: centroid (released) | farthest (eq. 6)
    # the released memory order: the cross term also writes its features into the other modality's memories,
    # before that modality's own term reads them for its gradient (memories inside backward); false: each
    # memory takes its own modality's features after the step (7.3 Rank-1 lower on one demo seed)
    pclhd_released_memory_order: bool = True
    # ablations (paper Table 2): pclhd_hpcl false reads the centroid memory alone, CE(centroid) in place of
    # the memory loss (PGM's baseline); pclhd_dpcl false drops DPCL. Each term keeps its weight
    pclhd_hpcl: bool = True
    pclhd_dpcl: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(
            self,
            {
                "pclhd_lambda": (0 <= self.pclhd_lambda <= 1, "a value in [0, 1]"),
                "pclhd_ema_half_life": (self.pclhd_ema_half_life >= 0, "a value >= 0"),
                "pclhd_momentum_encoder": (0 <= self.pclhd_momentum_encoder < 1, "a value in [0, 1)"),
                "pclhd_dynamic_samples": (self.pclhd_dynamic_samples >= 1, "a value >= 1"),
                "pclhd_centroid_margin": (self.pclhd_centroid_margin >= 0, "a value >= 0"),
                "pclhd_hard_init": (self.pclhd_hard_init in ("centroid", "farthest"), "centroid or farthest"),
            },
        )


class PCLHD(ClusterContrast):
    name = "pclhd"
    two_stage = True
    default_association = "hungarian"
    default_dcl_epochs = 50  # E_CPCL

    def __init__(self, setup: RunSetup, samples, options: PCLHDOptions) -> None:
        super().__init__(setup, samples, options)
        self.net: PCLHDNet | None = None
        self.hard: dict[int, ClusterMemory] = {}
        self.dynamic: dict[int, torch.Tensor] = {}
        self.cross = np.full(len(samples), -1, dtype=np.int64)  # row -> cluster of the space modality
        self.space_modality = VISIBLE
        self._cross_device: torch.Tensor | None = None
        self.beta = options.pclhd_momentum_encoder

    def train_module(self, model: nn.Module) -> nn.Module:
        super().train_module(model)
        self.net = PCLHDNet(model, self.options.pclhd_released_dynamic)
        return self.net

    def plan(self, plan: RunPlan) -> None:
        """Beta from the half-life as a share of this run's stage 2 (0: the literal beta)."""
        stage2_steps = max(plan.epochs - self.dcl_epochs, 0) * plan.steps_per_epoch
        if self.options.pclhd_ema_half_life > 0 and stage2_steps > 0:
            self.beta = ema_beta(self.options.pclhd_ema_half_life * stage2_steps)

    def report(self) -> EpochReport:
        if not self.stage2:
            return super().report()
        half_life = math.log(0.5) / math.log(self.beta) if 0 < self.beta < 1 else math.inf
        ema = {"ema_beta": round(self.beta, 6), "ema_half_life_steps": round(half_life, 1)}
        return super().report() | EpochReport(settings=ema)

    def schedule_restart(self) -> int | None:
        return self.dcl_epochs or None  # the released code builds a new Adam and schedule at stage 2

    # ------------------------------------------------------------------------------------- labels

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        labels = super().epoch_labels(context, epoch)
        self.net.stage2 = self.stage2
        return labels

    def stage2_labels(self, context: TrainingContext, features: np.ndarray) -> np.ndarray:
        cfg = self.options
        if self.epoch == self.dcl_epochs:  # the momentum encoder starts as the stage-1 model
            self.net.ema.load_state_dict(self.net.model.state_dict())
        for m in (VISIBLE, INFRARED):
            rows = self.rows_of[m]
            start = hard_memory_start(
                cfg.pclhd_hard_init, features[rows], self.local(self.intra[rows], m), self.memories[m].prototypes
            )
            self.hard[m] = self.new_memory(start)
        self._dynamic_memories(context)
        space = "infrared" if (self.epoch - self.dcl_epochs) % 2 == 0 else "visible"  # PGM's alternation
        result = associate(
            cfg.association,
            features,
            self.modality,
            self.intra,
            space,
            cfg,
            self.pid,
            self.device.type,
            self.setup.seed,
        )
        self.space_modality = MODALITY_OF[result.attrs["space"]]
        other = self.modality != self.space_modality
        self.cross = np.where(other, self.local(result.label, self.space_modality), -1)
        self._cross_device = None
        self._report |= self.association_report(result.label, self.space_modality)
        return self.intra

    def _dynamic_memories(self, context: TrainingContext) -> None:
        """Eq. 17-18: M members per cluster, with replacement, encoded by the momentum encoder."""
        m_per = self.options.pclhd_dynamic_samples
        rng = np.random.default_rng(epoch_seed(self.setup.seed, self.epoch))
        picks = {}
        for m in (VISIBLE, INFRARED):
            rows = self.rows_of[m]
            local = self.local(self.intra[rows], m)
            picks[m] = np.stack([rng.choice(rows[local == k], m_per) for k in range(len(self.memories[m]))])
        chosen, position = np.unique(np.concatenate([p.ravel() for p in picks.values()]), return_inverse=True)
        samples = [context.samples[i] for i in chosen]  # each image encoded once
        fs = context.extract(samples, model=self.net.ema)
        feats = F.normalize(torch.as_tensor(fs.features, device=self.device), dim=1)
        start = 0
        for m, p in picks.items():
            index = torch.as_tensor(position[start : start + p.size], device=self.device)
            self.dynamic[m] = feats[index].reshape(*p.shape, -1)
            start += p.size

    # --------------------------------------------------------------------------------------- loss

    def stage2_loss(self, out, feats, labels, modality, rows) -> dict[str, torch.Tensor]:
        cfg = self.options
        tau = cfg.memory_temperature
        queries = F.normalize(out["feat_ema"].float(), dim=1) if "feat_ema" in out else feats
        hpcl, dpcl = feats.sum() * 0.0, queries.sum() * 0.0  # released queries: no gradient at all
        space = self.space_modality
        target, other = self._cross_rows(rows, modality)
        written = None
        if cfg.pclhd_released_memory_order:  # the cross term's backward runs first and writes first
            written = self._cross_written(feats[other].detach(), target[other])
        for m in (VISIBLE, INFRARED):
            own = modality == m
            local = labels[own] - self.offset[m]
            hpcl = hpcl + self.memory_loss(feats[own], m, local, written if m == space else None)
            if cfg.pclhd_dpcl:
                dpcl = dpcl + F.cross_entropy(dynamic_logits(queries[own], self.dynamic[m], local, tau), local)
        cross = self.memory_loss(feats[other], space, target[other])
        if cfg.pclhd_centroid_hinge:  # the released cross term is the memory's own 0.5 (CE + hinge)
            cross = 0.5 * cross
        lam = cfg.pclhd_lambda
        return {"hpcl": lam * hpcl, "dpcl": (1 - lam) * dpcl, "cross": cfg.pclhd_cross_weight * cross}

    def _cross_on(self, device: torch.device) -> torch.Tensor:
        """The epoch's cross labels on the device, copied once per epoch rather than every step."""
        if self._cross_device is None or self._cross_device.device != device:
            self._cross_device = torch.as_tensor(self.cross, device=device)
        return self._cross_device

    def memory_loss(self, feats: torch.Tensor, m: int, labels: torch.Tensor, written=None) -> torch.Tensor:
        """CE against modality ``m``'s hard memory, plus the released centroid hinge max(0, CE(centroid) - r)
        (the released ``CMhard`` loss is half their sum; the callers weigh it). ``written``: the (hard,
        centroid) prototypes after the cross term's write, which the gradient then reads."""
        hard_memory, centroids = self.hard[m], self.memories[m]
        if written is not None:
            hard_memory, centroids = ReadAfterWrite(hard_memory, written[0]), ReadAfterWrite(centroids, written[1])
        if not self.options.pclhd_hpcl:
            return contrast_loss(feats, centroids, labels)
        hard = contrast_loss(feats, hard_memory, labels)
        if not self.options.pclhd_centroid_hinge:
            return hard
        return hard + torch.relu(contrast_loss(feats, centroids, labels) - self.options.pclhd_centroid_margin)

    def _cross_written(self, feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The space modality's (hard, centroid) prototypes after the released cross term's write: its
        features, under their partner clusters, update both memories as the own features do."""
        hard, centroids = (
            copy.copy(mem) for mem in (self.hard[self.space_modality], self.memories[self.space_modality])
        )
        hard.prototypes, centroids.prototypes = hard.prototypes.clone(), centroids.prototypes.clone()
        write_memories(hard, centroids, feats, labels)
        return hard.prototypes, centroids.prototypes

    def _cross_rows(self, rows: torch.Tensor, modality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch rows' partner clusters in the space modality, and which rows the cross term takes."""
        target = self._cross_on(modality.device)[rows.to(modality.device)]
        return target, (modality != self.space_modality) & (target >= 0)

    def update_memories(self, feats, labels, modality, rows) -> None:
        """Stage 2: each modality's own features write its memories (``write_memories``); with the released
        memory order the cross term's features write first."""
        if not self.stage2:
            return super().update_memories(feats, labels, modality, rows)
        if self.options.pclhd_released_memory_order:
            space = self.space_modality
            target, other = self._cross_rows(rows, modality)
            write_memories(self.hard[space], self.memories[space], feats[other], target[other])
        for m in (VISIBLE, INFRARED):
            own = modality == m
            write_memories(self.hard[m], self.memories[m], feats[own], labels[own] - self.offset[m])

    @torch.no_grad()
    def after_step(self) -> None:
        """Eq. 16: phi_m <- beta phi_m + (1 - beta) phi_0, in stage 2, on the parameters only: the BN
        statistics are the momentum encoder's own (its train-mode forward in ``PCLHDNet``)."""
        super().after_step()  # the memories
        if not self.stage2:
            return
        online = dict(self.net.model.named_parameters())
        names = [name for name, _ in self.net.ema.named_parameters()]
        ema = [p for _, p in self.net.ema.named_parameters()]
        torch._foreach_lerp_(ema, [online[name].detach() for name in names], 1 - self.beta)  # one call, not ~640

    # -------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "ema": self.net.ema.state_dict(),
            "hard": {m: mem.prototypes.cpu() for m, mem in self.hard.items()},
            "dynamic": {m: d.cpu() for m, d in self.dynamic.items()},
            "cross": self.cross,
            "space": self.space_modality,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.net.ema.load_state_dict(state["ema"])
        self.hard = {m: self.new_memory(p) for m, p in state["hard"].items()}
        self.dynamic = {m: d.to(self.device) for m, d in state["dynamic"].items()}
        self.cross, self.space_modality = np.asarray(state["cross"]), state["space"]
        self._cross_device = None

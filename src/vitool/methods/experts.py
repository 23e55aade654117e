"""Heterogeneous expert collaborative consistency learning for weakly supervised VI-ReID (Zhang, Kong, Li,
Wen, ICCV 2025, arXiv 2507.12942; released code KongLingqi2333/WSL-VIReID). Each modality has identity labels of its own
(``vitool weak-labels``) and no cross-modal link is known.

The network is the two-stream model (a stem per modality, shared trunk, GeM, BNNeck) with three
bias-free classifiers on the BN feature: the visible expert W^v (visible ids), the infrared expert W^r
(infrared ids) and the shared classifier W^c (the model's own classifier, in the *infrared* id space).

- Stage 1, HEL (§3): CE of each expert on its own modality + lambda_1 WRT inside each modality.
- Stage 2, every epoch: CRE (§4) through ``vitool.assign.assign("experts", ...)``, the function behind
  `vitool assign-labels --method experts`: each expert scores the other modality, Count Priority
  Selection in both directions, consistent / single / contradictory identity pairs. Then per batch:
  the experts' CE (L_id^exp, training the backbone too, as the paper's L_phase2 reads; the released
  code detaches it: ``experts_detach_ce``); CMCL (§5): the strong CE of W^c (visible samples through their
  consistent or single partner, every infrared sample with its own id), lambda_1 WRT across modalities
  on consistent pairs, and from ``experts_weak_start`` lambda_2 times the weak loss on contradictory
  candidates; CLAE (§6): per-identity prototypes and the entropy-weighted homogeneity loss, which trains
  only the experts.

Our decisions where the released code and the paper differ (docs/training.md): infrared images always
take the infrared stem; a visible identity may have two contradictory candidates (the paper's matrix
form); the prototype weight names its side (``experts_proto_new_weight`` = 0.8 on the new batch mean, as
the code); the homogeneity loss compares logits (as the code); the weak loss uses a stable softmax; the
modalities may have different identity sets; CRE runs in stage 2 only; the learning-rate schedule and the
optimiser state restart at stage 2 (the reference builds a new Adam); one view per visible image with
random grayscale 0.5 instead of a second channel-exchanged view (half the visible compute).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitool.data.datasets import Sample
from vitool.distributed import computed_on_main, gather_batch
from vitool.errors import VitoolError
from vitool.methods.association import shuffled_identities
from vitool.methods.contract import EpochLabels, EpochReport, Method, RunSetup, TrainingContext, check_options
from vitool.methods.labels import labels_from_file
from vitool.modality import INFRARED, MODALITY_NAMES, VISIBLE
from vitool.models.checkpoint import load_fitting
from vitool.models.losses import weighted_regularized_triplet


def weak_loss(logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """L_weak (§5): with p = softmax(logits) and tau the smallest p among a sample's candidate classes,
    push down every class strictly below tau: mean over samples of sum_k [p_k < tau] -log(1 - p_k)."""
    p = torch.softmax(logits, dim=1)
    tau = p.masked_fill(~candidates, float("inf")).min(dim=1, keepdim=True).values
    below = (p < tau).float()  # no gradient through the mask
    return (-torch.log(1.0 - p + 1e-10) * below).sum(dim=1).mean()


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, dim=1)
    return -(p * torch.log2(p.clamp_min(1e-12))).mean()


def entropy_weights(vis_by_ir_expert: torch.Tensor, ir_by_vis_expert: torch.Tensor) -> tuple[float, float]:
    """(w_v, w_r) of CLAE (§6): each expert's share of the homogeneity loss is its mean entropy on the
    other modality over the sum of both, so the less certain expert is constrained more."""
    h_vr, h_rv = float(_entropy(vis_by_ir_expert.detach())), float(_entropy(ir_by_vis_expert.detach()))
    total = h_vr + h_rv
    return (h_rv / total, h_vr / total) if total > 0 else (0.5, 0.5)


class ExpertsNet(nn.Module):
    """The model plus the two experts and the identity prototypes (buffers, so they are checkpointed).

    The homogeneity loss reads the experts' logits of detached features (it trains only them); the
    experts' CE reads ``logits_v`` / ``logits_r``, attached, and the method detaches them when
    ``experts_detach_ce`` (the released code's stage 2)."""

    def __init__(self, model: nn.Module, classes_v: int, classes_r: int) -> None:
        super().__init__()
        self.model, self.stage2 = model, False
        dim = model.feature_dim
        self.expert_visible = nn.Linear(dim, classes_v, bias=False)
        self.expert_infrared = nn.Linear(dim, classes_r, bias=False)
        for expert in (self.expert_visible, self.expert_infrared):
            nn.init.normal_(expert.weight, std=0.001)
        self.register_buffer("proto_v", torch.zeros(classes_v, dim))
        self.register_buffer("proto_r", torch.zeros(classes_r, dim))

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(images, modality)
        feat = out["feat"]
        out["logits_v"], out["logits_r"] = self.expert_visible(feat), self.expert_infrared(feat)
        if self.stage2:  # the homogeneity loss trains the experts only
            detached = feat.detach()
            out["logits_v_detached"] = self.expert_visible(detached)
            out["logits_r_detached"] = self.expert_infrared(detached)
        return out

    def classifiers(self) -> dict[str, np.ndarray]:
        """The two experts as ``assign("experts")`` reads them: weight rows are each modality's ids."""
        out = {}
        for name, expert in (("expert_visible", self.expert_visible), ("expert_infrared", self.expert_infrared)):
            out[name] = expert.weight.detach().float().cpu().numpy()
            out[f"{name}_classes"] = np.arange(expert.out_features)
        return out

    def heads_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}


@dataclass
class ExpertsOptions:
    """The keys of the heterogeneous experts (paper §4-5; defaults: the released SYSU-MM01 settings)."""

    experts_stage1_epochs: int = 20  # HEL epochs before CRE / CMCL / CLAE (SYSU 20, LLCM 80, RegDB 50)
    experts_weak_start: int = 30  # stage-2 epoch from which the weak (exclusion) loss runs
    experts_sharpen: float = 3.0  # CRE multiplies the expert logits by this before the softmax
    experts_proto_new_weight: float = 0.8  # prototype <- (1 - w) prototype + w batch mean
    experts_detach_ce: bool = False  # true: stage 2 trains the experts on detached features (released code)
    experts_oracle: bool = False  # diagnostic: every true identity pair as a consistent match, no CRE
    # control: the oracle's pairs with every infrared identity moved to another person
    # (methods.association.shuffled_identities): a broken association, which must not beat HEL only
    experts_shuffled: bool = False
    experts_triplet_weight: float = 0.25  # lambda_1, each WRT term
    experts_weak_weight: float = 0.25  # lambda_2, the weak loss
    # ablations (the paper's rows): experts_cre false keeps only the pairs both experts agree on (no single
    # pairs, no contradictory candidates: "CMCL without CRE"); experts_clae false drops the homogeneity loss
    experts_cre: bool = True
    experts_clae: bool = True

    def __post_init__(self) -> None:
        check_options(
            self,
            {
                "experts_stage1_epochs": (self.experts_stage1_epochs >= 0, "a value >= 0"),
                "experts_weak_start": (self.experts_weak_start >= 0, "a value >= 0"),
                "experts_sharpen": (self.experts_sharpen > 0, "a value > 0"),
                "experts_proto_new_weight": (0 <= self.experts_proto_new_weight <= 1, "a value in [0, 1]"),
                "experts_shuffled": (
                    not (self.experts_shuffled and self.experts_oracle),
                    "false when experts_oracle is true",
                ),
            },
        )


class Experts(Method):
    name = "experts"
    batch_shape = (8, 4)  # 8 identities x 4 images per modality, drawn per modality
    visible_grayscale = 0.5
    # WSL's released pipeline: CAJ's augmentations, its sampler, its flip-averaged test (mean, then L2)
    erasing_style, infrared_channel_gray, sampler_replacement, test_flip = "channel", 0.5, 0, "mean"
    bnneck_at_backbone_rate = True  # released: only names holding "classifier" train at 2x (models/__init__.py)
    warmup_factor = 0.01  # the released warm-up: 0.01, 0.109, ..., 0.901 over 10 epochs of each stage

    def __init__(self, setup: RunSetup, samples: list[Sample], options: ExpertsOptions) -> None:
        from vitool.data.weak import weak_labels

        self.setup, self.options = setup, options
        self.modality = np.array([s.modality for s in samples])
        self.pid = np.array([s.pid for s in samples])
        if setup.labels:
            intra = labels_from_file(Path(setup.labels), samples, field="intra_label")
            self.label_source = str(setup.labels)
        else:
            intra = weak_labels(self.pid, self.modality, setup.seed)
            self.label_source = "ground truth, per modality"
        self.intra = np.full(len(samples), -1, dtype=np.int64)  # contiguous ids per modality
        self.classes = {}
        for m in (VISIBLE, INFRARED):
            rows = np.flatnonzero((self.modality == m) & (intra >= 0))
            if not len(rows):
                name = MODALITY_NAMES[m]
                raise VitoolError(setup.labels or None, f"has no labelled {name} training image", "label both")
            ids, self.intra[rows] = np.unique(intra[rows], return_inverse=True)
            self.classes[m] = len(ids)
        self.stage1 = options.experts_stage1_epochs
        self.net: ExpertsNet | None = None
        self.epoch = 0
        self._relations_on: dict[str, torch.Tensor] | None = None  # the relations on the training device
        self.relations = self._no_relations()
        self._report = EpochReport()

    @property
    def relations(self) -> dict[str, np.ndarray]:
        """The epoch's CRE relations (strong and consistent partners, contradictory candidates)."""
        return self._relations

    @relations.setter
    def relations(self, value: dict[str, np.ndarray]) -> None:
        self._relations, self._relations_on = value, None  # copied to the device again at the next step

    def num_classes(self) -> int:
        return self.classes[INFRARED]  # W^c lives in the infrared id space (released ``models/agw.py``)

    def held_parameters(self) -> tuple[list[nn.Parameter], int]:
        """W^c as released: outside the HEL optimiser, so at its initial weights until CRE starts (in the
        optimiser with no gradient, Adam's weight decay would shrink it to nothing)."""
        return list(self.net.model.classifier.parameters()), self.stage1

    def adjust_model(self, model_config) -> None:
        """The released network (WSL-VIReID ``models/agw.py``): stems without a ReLU, a trained GeM exponent
        (from 3, input clamped at 1e-6), a trainable BNNeck bias, no non-local blocks."""
        model_config.two_stream, model_config.non_local, model_config.gem_p = True, False, 3.0
        model_config.stem_relu, model_config.gem_learned, model_config.gem_clamp, model_config.bnneck_bias = (
            False,
            True,
            1e-6,
            True,
        )

    def train_module(self, model: nn.Module) -> nn.Module:
        self.net = ExpertsNet(model, self.classes[VISIBLE], self.classes[INFRARED])
        return self.net

    def schedule_restart(self) -> int | None:
        return self.stage1 or None  # the released code builds a new optimiser and schedule for stage 2

    # ------------------------------------------------------------------------------------- labels

    def _no_relations(self) -> dict[str, np.ndarray]:
        c_v, c_r = self.classes[VISIBLE], self.classes[INFRARED]
        return {
            "strong": np.full(c_v, -1, dtype=np.int64),  # visible id -> consistent or single infrared partner
            "consistent_v": np.full(c_v, -1, dtype=np.int64),  # visible id -> consistent infrared partner
            "consistent_r": np.full(c_r, -1, dtype=np.int64),  # infrared id -> consistent visible partner
            "candidates": np.zeros((c_v, c_r), dtype=bool),  # contradictory candidates of each visible id
        }

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        self.epoch = epoch
        self.net.stage2 = epoch >= self.stage1
        self._report = EpochReport(settings={"labels_from": self.label_source, "stage": 2 if self.net.stage2 else 1})
        if self.net.stage2:
            self._relate(context)
        return EpochLabels(self.intra, independent=True)  # each modality's identities are its own

    def _relate(self, context: TrainingContext) -> None:
        """CRE on eval-mode features of every training image, and the prototypes' per-epoch reset."""
        from vitool.assign import assign, class_means
        from vitool.evaluation.diagnostics import match_diagnostics

        fs = context.extract(context.samples)
        if self.options.experts_oracle or self.options.experts_shuffled:  # the true pairs, or broken ones
            pid = self.pid
            if self.options.experts_shuffled:
                pid = shuffled_identities(self.pid, self.modality, self.setup.seed)
            result = self._true_pairs(pid)
        else:
            result = computed_on_main(  # one CRE for every process, computed once
                assign,
                "experts",
                fs.features,
                self.modality,
                self.intra,
                where="training labels",
                experts=self.net.classifiers(),
                sharpen=self.options.experts_sharpen,
            )
        self.relations = self._links(result.extra)
        for m, proto in ((VISIBLE, self.net.proto_v), (INFRARED, self.net.proto_r)):
            rows = self.modality == m
            ids, means = class_means(fs.features[rows], self.intra[rows])
            proto[torch.as_tensor(ids)] = torch.as_tensor(means, device=proto.device, dtype=proto.dtype)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for proto in (self.net.proto_v, self.net.proto_r):
                torch.distributed.broadcast(proto, src=0)
        if (self.pid >= 0).all():  # diagnostics only: the hidden cross-modal truth
            rates, counts = match_diagnostics(self.pid, self.modality, self.intra, result.extra)
            quality = {f"cre_{k}": round(v, 4) for k, v in rates.items()}
            self._report |= EpochReport(quality, {f"cre_{k}": v for k, v in counts.items()})
        else:
            self._report |= EpochReport(counts={f"cre_{k}": v for k, v in result.attrs.items() if k.endswith("_pairs")})

    def _links(self, pairs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """CRE's pairs as the losses read them: consistent and single pairs as strong links (consistent ones
        also for the cross triplet and CLAE), contradictory ones as weak candidates; with ``experts_cre``
        false, the consistent pairs alone (the paper's row without CRE)."""
        rel = self._no_relations()
        cre = self.options.experts_cre
        for kind in ("consistent", "single") if cre else ("consistent",):
            for v, r in pairs[f"pairs_{kind}"][:, :2].tolist():
                rel["strong"][v] = r
                if kind == "consistent":
                    rel["consistent_v"][v], rel["consistent_r"][r] = r, v
        for v, r in pairs["pairs_contradictory"][:, :2].tolist() if cre else []:
            rel["candidates"][v, r] = True
        return rel

    def _true_pairs(self, pid: np.ndarray):
        """Every (visible id, infrared id) of the same person in ``pid``, as consistent pairs (``experts_oracle``;
        ``experts_shuffled`` passes identities whose infrared ones name other people)."""
        from vitool.assign import Assignment

        owner = {}
        for m in (VISIBLE, INFRARED):
            rows = (self.modality == m) & (self.intra >= 0)
            owner[m] = dict(zip(pid[rows].tolist(), self.intra[rows].tolist(), strict=False))
        pairs = [(v, owner[INFRARED][p], 0, 0) for p, v in owner[VISIBLE].items() if p in owner[INFRARED]]
        empty = np.zeros((0, 4), dtype=np.int64)
        extra = {"pairs_consistent": np.array(pairs, dtype=np.int64).reshape(-1, 4)}
        return Assignment(self.intra, self.intra, extra=extra | {"pairs_single": empty, "pairs_contradictory": empty})

    def adopt_labels(self, plan: EpochLabels) -> None:
        """Labels never change; the relations and prototypes come from process 0 in ``_relate``."""

    def report(self) -> EpochReport:
        return self._report

    # --------------------------------------------------------------------------------------- loss

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.options
        vis, ir = modality == VISIBLE, modality == INFRARED
        y_v, y_r = labels[vis], labels[ir]
        pre_v, pre_r = out["pre_bn"][vis].float(), out["pre_bn"][ir].float()
        logits_v, logits_r = out["logits_v"].float(), out["logits_r"].float()
        if self.net.stage2 and cfg.experts_detach_ce:  # the released code: the experts' CE trains only them
            logits_v, logits_r = out["logits_v_detached"].float(), out["logits_r_detached"].float()
        terms = {"expert_ce": F.cross_entropy(logits_v[vis], y_v) + F.cross_entropy(logits_r[ir], y_r)}
        if not self.net.stage2:
            terms["triplet"] = cfg.experts_triplet_weight * (
                weighted_regularized_triplet(pre_v, y_v) + weighted_regularized_triplet(pre_r, y_r)
            )
        else:
            logits_v, logits_r = out["logits_v_detached"].float(), out["logits_r_detached"].float()
            # as released, the prototypes take this batch (every process's) before the homogeneity term reads them
            self._update_prototypes(*gather_batch(out["feat"].detach().float(), modality, labels))
            terms |= self._stage2_terms(out, vis, ir, y_v, y_r, pre_v, pre_r, logits_v, logits_r)
        total = sum(terms.values())
        # every output joins the graph, so DistributedDataParallel sees each parameter every step
        total = total + sum(0.0 * v.float().sum() for v in out.values() if v.requires_grad)
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _stage2_terms(self, out, vis, ir, y_v, y_r, pre_v, pre_r, logits_v, logits_r) -> dict[str, torch.Tensor]:
        cfg, device = self.options, y_v.device
        if self._relations_on is None or self._relations_on["strong"].device != device:  # once per epoch
            self._relations_on = {k: torch.as_tensor(v, device=device) for k, v in self.relations.items()}
        rel = self._relations_on
        zero = pre_v.sum() * 0.0
        wc_v, wc_r = out["logits"][vis].float(), out["logits"][ir].float()
        partner = rel["strong"][y_v]
        matched = partner >= 0
        strong = F.cross_entropy(wc_r, y_r)
        if matched.any():
            strong = strong + F.cross_entropy(wc_v[matched], partner[matched])
        cons_v, cons_r = rel["consistent_v"][y_v], rel["consistent_r"][y_r]
        cv, cr = cons_v >= 0, cons_r >= 0
        wrt = weighted_regularized_triplet
        triplet = zero
        if cv.any():  # visible samples in infrared ids, with every infrared sample
            triplet = triplet + wrt(torch.cat([pre_v[cv], pre_r]), torch.cat([cons_v[cv], y_r]))
        if cr.any():  # infrared samples in visible ids, with every visible sample
            triplet = triplet + wrt(torch.cat([pre_r[cr], pre_v]), torch.cat([cons_r[cr], y_v]))
        terms = {"strong": strong, "triplet_cross": cfg.experts_triplet_weight * triplet}
        candidates = rel["candidates"][y_v]
        has = candidates.any(dim=1)
        if self.epoch - self.stage1 >= cfg.experts_weak_start:  # logged from its start, 0 without candidates
            terms["weak"] = cfg.experts_weak_weight * weak_loss(wc_v[has], candidates[has]) if has.any() else zero
        if not cfg.experts_clae:
            return terms
        w_v, w_r = entropy_weights(logits_r[vis], logits_v[ir])
        homo = zero
        if cv.any():  # W^v: a visible sample and its infrared partner's prototype alike; W^v(P^r): C_r x C_v
            proto_r_by_v = self.net.expert_visible(self.net.proto_r.clone()).float()
            homo = homo + w_v * F.mse_loss(logits_v[vis][cv], proto_r_by_v[cons_v[cv]])
        if cr.any():  # W^r(P^v): C_v x C_r
            proto_v_by_r = self.net.expert_infrared(self.net.proto_v.clone()).float()
            homo = homo + w_r * F.mse_loss(logits_r[ir][cr], proto_v_by_r[cons_r[cr]])
        terms["homogeneity"] = homo
        return terms

    @torch.no_grad()
    def _update_prototypes(self, feat: torch.Tensor, modality: torch.Tensor, labels: torch.Tensor) -> None:
        """P <- (1 - w) P + w mean(batch features of the identity), for each identity in the batch."""
        w = self.options.experts_proto_new_weight
        vis, ir = modality == VISIBLE, modality == INFRARED
        for proto, f, y in ((self.net.proto_v, feat[vis], labels[vis]), (self.net.proto_r, feat[ir], labels[ir])):
            ids, inverse = torch.unique(y, return_inverse=True)
            sums = torch.zeros(len(ids), f.shape[1], device=f.device).index_add_(0, inverse, f)
            means = sums / torch.bincount(inverse, minlength=len(ids))[:, None]
            proto[ids] = (1 - w) * proto[ids] + w * means.to(proto.dtype)

    # -------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {"relations": self.relations, "report": self._report.state(), "heads": self.net.heads_state()}

    def start_from(self, saved: dict[str, Any]) -> list[str]:
        return load_fitting(self.net, saved.get("heads", {})) if self.net is not None else []

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.relations = {k: np.asarray(v) for k, v in state["relations"].items()}
        self._report = EpochReport.from_state(state.get("report"))
        self.net.load_state_dict({**self.net.state_dict(), **state["heads"]})

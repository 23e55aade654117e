"""OTLA: optimal-transport label assignment for label-efficient VI-ReID (Wang et al., ECCV 2022;
released code wjm-wjm/OTLA-ReID). Visible images carry labels (ground truth: semi-supervised; a
labels file such as `vitool cluster` output: unsupervised); infrared images get pseudo labels from a
Sinkhorn equipartition over the classifier's predictions, refreshed once per epoch.

The network is one shared backbone (no modality-specific stem, no non-local block, average pooling) with
the paper's three parts:

- DEN (§3.2): a modality discriminator on the concatenated BN'd average-pooled outputs of five levels
  (stem, three trunk stages, the final features), behind a gradient-reversal layer whose coefficient
  follows the DANN schedule gamma = 2 / (1 + exp(-10 iter / max_iter)) - 1. The paper's max_iter is
  10,000 iterations of a run of 81 epochs x 696 steps on SYSU-MM01 (released code; ``iter`` grows by
  ``grl_step`` per forward, 1 on SYSU, 5 on RegDB), so the ramp ends at 17.7% of the run. vitool keeps that
  share in runs of any length: max_iter = ``grl_ramp`` x the run's steps, one unit per step;
  ``grl_ramp = 0`` is the literal 10,000 in ``grl_step`` units. Loss: BCE, visible = 1.
- OTLA (§3.3, Eq. 3-5): the infrared label bank from ``vitool.assign.assign("ot", ...)``, the function
  behind `vitool assign-labels --method ot` (lambda = ``ot_lambda``, 25).
- PAL (§3.4, Eq. 6-10): batch-level prediction mix-up and two KL terms (0.1 and 0.5).

Total loss as the reference trainer: CE_v + Tri_v + 0.1 CE_r + 0.5 Tri_r + BCE + PAL, with batch-hard
triplets (margin 0.3) within each modality on the pre-BN features; the infrared targets are the pseudo
labels, which the sampler puts in the slots of the visible class of the same label (4 ids x 8 images).

Our choices where the reference code does something the paper does not say (docs/training.md):
predictions for the assignment come from the model in eval mode on un-augmented images (the reference
runs train-mode BN over augmented infrared-only batches, which also moves the running statistics); the
labels computed at the start of epoch e shape the batches of epoch e (the reference's shape e + 1); the
bank starts from class-centre similarity of the ImageNet features (``ot_init = "prototypes"``) rather
than uniform-random labels (``ot_init = "random"``, the reference); the GRL step is saved in checkpoints.

``use_infrared=False`` is the visible-only baseline (``--method visible``): the same network trained with
CE + triplet on the visible labels alone, the lower bound a label-efficient method must beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitool.data.datasets import Sample
from vitool.methods.association import shuffled_identities
from vitool.methods.contract import EpochLabels, EpochReport, Method, RunPlan, RunSetup, TrainingContext, check_options
from vitool.methods.labels import visible_training_labels
from vitool.modality import INFRARED, VISIBLE
from vitool.models.checkpoint import load_fitting
from vitool.models.losses import batch_hard_triplet
from vitool.models.network import FEATURE_DIM, LEVEL_DIMS

LAMBDA_VR, LAMBDA_RV = 0.1, 0.5  # PAL weights (paper §3.4)
IR_CE_WEIGHT, IR_TRIPLET_WEIGHT = 0.1, 0.5  # reference trainer's infrared terms


GRL_MAX_ITER = 10_000  # paper §4.2 and the released code
GRL_REFERENCE_STEPS = 81 * 696  # the released SYSU-MM01 run: 81 epochs of 696 steps
GRL_RAMP = round(GRL_MAX_ITER / GRL_REFERENCE_STEPS, 3)  # 0.177: the share of the run the ramp takes


def grl_coefficient(iteration: float, alpha: float = 10.0, max_iter: float = GRL_MAX_ITER) -> float:
    """DANN's schedule, rising from 0 to 1 (paper §4.2: tau = 10, maxiter = 10000)."""
    return 2.0 / (1.0 + math.exp(-alpha * iteration / max_iter)) - 1.0


class GradientReversal(torch.autograd.Function):
    """Identity forward; the backward gradient is multiplied by -coefficient (Ganin & Lempitsky, 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.coefficient * grad, None


def _frozen_bias_bn(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)
    return bn


class ModalityDiscriminator(nn.Module):
    """Three FC layers and a BN before the output (paper §4.2; widths as the reference: d -> d/2 -> d/2 -> 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        half = dim // 2
        self.net = nn.Sequential(
            nn.Linear(dim, half),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(half, half),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(half, 1),
            _frozen_bias_bn(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # a logit; sigmoid + BCE are fused in the loss


class OTLANet(nn.Module):
    """The model plus DEN: BN heads on the four lower levels and the GRL discriminator. The GRL
    iteration counter is a buffer, so it is checkpointed (the reference restarts it at 0 on resume)."""

    def __init__(self, model: nn.Module, grl_step: int) -> None:
        super().__init__()
        self.model, self.grl_step, self.max_iter = model, grl_step, float(GRL_MAX_ITER)
        backbone = model.config.backbone
        self.level_bns = nn.ModuleList(_frozen_bias_bn(d) for d in LEVEL_DIMS[backbone])
        self.discriminator = ModalityDiscriminator(sum(LEVEL_DIMS[backbone]) + FEATURE_DIM[backbone])
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self._steps: int | None = None  # the counter on the host, so no step waits on the device to read it

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._steps = None  # re-read once from the loaded buffer

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.model(images, modality, levels=True)
        if self.training:
            self._steps = self.steps + self.grl_step
            self.iteration += self.grl_step  # the checkpointed copy, on the device
        levels = [bn(x) for bn, x in zip(self.level_bns, out.pop("levels"), strict=True)]
        joint = torch.cat([*levels, out["feat"]], dim=1)
        coefficient = self.coefficient()
        out["modality_logit"] = self.discriminator(GradientReversal.apply(joint, coefficient))
        return out

    @property
    def steps(self) -> int:
        """GRL iterations so far (read from the device once, then counted on the host)."""
        if self._steps is None:
            self._steps = int(self.iteration)
        return self._steps

    @steps.setter
    def steps(self, value: int) -> None:
        self._steps = int(value)
        self.iteration.fill_(int(value))

    def coefficient(self) -> float:
        return grl_coefficient(float(self.steps), max_iter=self.max_iter)

    def heads_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("model.")}


def prediction_alignment_loss(z_v: torch.Tensor, z_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """PAL (Eq. 6-9): (KL(S^v || S^vr), KL(S^rv || S^rr)) with S^xy = softmax(n(z_x) n(z_y)^T) z_y.

    The attention uses cosine similarity of the logits at temperature 1 and the KLs compare softmaxes,
    averaged over the batch, as the reference code; neither side is detached.
    """
    n_v, n_r = F.normalize(z_v, dim=1), F.normalize(z_r, dim=1)
    mix_vr = torch.softmax(n_v @ n_r.T, dim=1) @ z_r
    mix_rv = torch.softmax(n_r @ n_v.T, dim=1) @ z_v
    mix_rr = torch.softmax(n_r @ n_r.T, dim=1) @ z_r

    def kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
        return F.kl_div(F.log_softmax(q_logits, dim=1), F.softmax(p_logits, dim=1), reduction="batchmean")

    return kl(z_v, mix_vr), kl(mix_rv, mix_rr)


@dataclass
class OTLAOptions:
    """OTLA's keys (paper §3-4; the visible-only baseline reads none of the OT keys)."""

    ot_lambda: float = 25.0  # Sinkhorn sharpness (entropic regularisation 1 / ot_lambda)
    ot_init: str = "prototypes"  # first infrared labels from ImageNet class centres, or "random" (released)
    # the GRL ramp ends after this share of the run's steps (GRL_RAMP: the paper's max_iter 10,000 of the
    # released 81 x 696-step SYSU-MM01 run); 0: the literal max_iter 10,000, counted in grl_step units
    grl_ramp: float = GRL_RAMP
    grl_step: int = 1  # with grl_ramp = 0: GRL iterations per training step (released: 1 SYSU, 5 RegDB)
    ot_oracle: bool = False  # diagnostic: true infrared identities instead of the Sinkhorn bank
    # control: the oracle's labels with every infrared identity moved to another person's class
    # (methods.association.shuffled_identities): a broken link that keeps each infrared person together
    ot_shuffled: bool = False
    # control: every infrared image a random visible class, the classes filled equally and fixed for the
    # run: OTLA's association is per image, and this one is an equipartition that carries no information
    ot_random: bool = False
    # ablations (paper Table 2): false drops the infrared images' CE and triplet terms, so they train only
    # the modality discriminator (row 2 with ot_random and otla_pal false); otla_pal false drops L_a
    otla_ir_loss: bool = True
    otla_pal: bool = True  # false drops PAL (L_a, the prediction alignment of §3.4)
    otla_discriminator: bool = True  # false drops L_D, the modality discriminator's loss (rows 3 and 5)

    def __post_init__(self) -> None:
        check_options(
            self,
            {
                "ot_lambda": (self.ot_lambda > 0, "a value > 0"),
                "ot_init": (self.ot_init in ("prototypes", "random"), "prototypes or random"),
                "grl_ramp": (self.grl_ramp >= 0, "a value >= 0"),
                "grl_step": (self.grl_step >= 1, "a value >= 1"),
                "ot_shuffled": (not (self.ot_shuffled and self.ot_oracle), "false when ot_oracle is true"),
                "ot_random": (
                    not (self.ot_random and (self.ot_oracle or self.ot_shuffled)),
                    "false when ot_oracle or ot_shuffled is true",
                ),
            },
        )


class OTLA(Method):
    batch_shape = (4, 8)  # 4 identities x 8 images per modality (reference sampler)
    visible_grayscale = 0.5  # paper §4.2

    def __init__(self, setup: RunSetup, samples: list[Sample], options: OTLAOptions, use_infrared: bool = True) -> None:
        self.name = "otla" if use_infrared else "visible"
        self.setup, self.options, self.use_infrared = setup, options, use_infrared
        self.modality = np.array([s.modality for s in samples])
        self.pid = np.array([s.pid for s in samples])
        visible, self.label_source = visible_training_labels(setup, samples)
        classes, contiguous = np.unique(visible[visible >= 0], return_inverse=True)
        self.visible = np.full(len(samples), -1, dtype=np.int64)
        self.visible[visible >= 0] = contiguous  # classifier column j = j-th smallest visible label
        self.classes = len(classes)
        self.bank = np.full(len(samples), -1, dtype=np.int64)  # infrared pseudo labels (infrared rows only)
        self.net: OTLANet | None = None
        self._sinkhorn: dict[str, Any] = {}
        self._report = EpochReport()

    def num_classes(self) -> int:
        return self.classes

    def adjust_model(self, model_config) -> None:
        model_config.two_stream, model_config.non_local, model_config.gem_p = False, False, 1.0

    def train_module(self, model: nn.Module) -> nn.Module:
        if not self.use_infrared:
            return model
        self.net = OTLANet(model, self.options.grl_step)
        return self.net

    def plan(self, plan: RunPlan) -> None:
        """The GRL ramp over ``grl_ramp`` of this run's steps (0: the literal 10,000 iterations)."""
        if self.net is not None and self.options.grl_ramp > 0:
            self.net.grl_step = 1
            self.net.max_iter = max(self.options.grl_ramp * plan.epochs * plan.steps_per_epoch, 1.0)

    # ------------------------------------------------------------------------------------- labels

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        if not self.use_infrared:
            return EpochLabels(self.visible)
        self.bank = self._assign(context, epoch)
        labels = np.where(self.modality == INFRARED, self.bank, self.visible)
        self._report = EpochReport(settings={"labels_from": self.label_source}) | self._diagnostics(labels)
        return EpochLabels(labels)

    def adopt_labels(self, plan: EpochLabels) -> None:
        """Take process 0's labels in a distributed run."""
        if self.use_infrared:
            self.bank = np.where(self.modality == INFRARED, plan.labels, -1)

    def _assign(self, context: TrainingContext, epoch: int) -> np.ndarray:
        from vitool.assign import assign

        ir = np.flatnonzero(self.modality == INFRARED)
        bank = np.full(len(self.modality), -1, dtype=np.int64)
        if self.options.ot_oracle or self.options.ot_shuffled:  # the true identities, or a broken link
            pid = self.pid
            if self.options.ot_shuffled:
                pid = shuffled_identities(self.pid, self.modality, self.setup.seed)
            bank[ir] = self._true_classes(ir, pid)
            self._sinkhorn = {"cost": "shuffled" if self.options.ot_shuffled else "truth"}
            return bank
        if self.options.ot_random:  # the same draw every epoch: fixed for the run, and on resume
            rng = np.random.default_rng([self.setup.seed, 37])
            bank[ir] = rng.permutation(np.arange(len(ir)) % self.classes)
            self._sinkhorn = {"cost": "random-fixed"}
            return bank
        if epoch == 0 and self.options.ot_init == "random":
            rng = np.random.default_rng(self.setup.seed)
            bank[ir] = rng.integers(0, self.classes, len(ir))
            self._sinkhorn = {"cost": "random"}
            return bank
        samples = context.samples
        if epoch == 0:  # the ImageNet features: infrared rows against visible class centres
            fs = context.extract(samples)
            features, probs = fs.features, None
        else:  # the classifier's predictions on the infrared rows (visible rows are not read)
            fs = context.extract([samples[i] for i in ir])
            features = np.zeros((len(samples), fs.features.shape[1]), dtype=np.float32)
            probs = np.zeros((len(samples), self.classes), dtype=np.float32)
            probs[ir] = fs.probs
        result = assign(
            "ot",
            features,
            self.modality,
            self.visible,
            where="training labels",
            probs=probs,
            lam=self.options.ot_lambda,
        )
        self._sinkhorn = result.attrs
        bank[ir] = result.label[ir]
        return bank

    def _true_classes(self, rows: np.ndarray, pid: np.ndarray) -> np.ndarray:
        """The visible class holding each row's identity in ``pid`` (-1 when no visible class does); with
        ground-truth visible labels each class is one identity."""
        vis = self.visible >= 0
        owner = dict(zip(self.pid[vis].tolist(), self.visible[vis].tolist(), strict=True))
        return np.array([owner.get(int(p), -1) for p in pid[rows]], dtype=np.int64)

    def _diagnostics(self, labels: np.ndarray) -> EpochReport:
        from vitool.evaluation.diagnostics import cross_modal_accuracy

        report = EpochReport(settings={f"ot_{k}": v for k, v in self._sinkhorn.items() if k != "classes"})
        if (self.pid >= 0).all():
            accuracy = cross_modal_accuracy(self.pid, self.modality, labels)
            report.quality["ir_label_accuracy"] = round(100 * accuracy, 2)
        return report

    def report(self) -> EpochReport:
        if self.net is None:
            return self._report
        grl = {"grl_coefficient": round(self.net.coefficient(), 4), "grl_max_iter": round(self.net.max_iter, 1)}
        return self._report | EpochReport(settings=grl)

    # --------------------------------------------------------------------------------------- loss

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        vis, ir = modality == VISIBLE, modality == INFRARED
        logits, pre_bn = out["logits"].float(), out["pre_bn"].float()
        terms = {
            "ce_v": F.cross_entropy(logits[vis], labels[vis]),
            "triplet_v": batch_hard_triplet(pre_bn[vis], labels[vis]),
        }
        if self.use_infrared:
            if self.options.otla_ir_loss:
                terms["ce_r"] = IR_CE_WEIGHT * F.cross_entropy(logits[ir], labels[ir])
                terms["triplet_r"] = IR_TRIPLET_WEIGHT * batch_hard_triplet(pre_bn[ir], labels[ir])
            if self.options.otla_discriminator:
                terms["modality"] = F.binary_cross_entropy_with_logits(out["modality_logit"].float(), vis.float())
            if self.options.otla_pal:
                pal_vr, pal_rv = prediction_alignment_loss(logits[vis], logits[ir])
                terms["pal"] = LAMBDA_VR * pal_vr + LAMBDA_RV * pal_rv
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    # -------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"bank": self.bank.copy(), "report": self._report.state()}
        if self.net is not None:
            state["heads"] = self.net.heads_state()
        return state

    def start_from(self, saved: dict[str, Any]) -> list[str]:
        return load_fitting(self.net, saved.get("heads", {})) if self.net is not None else []

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.bank, self._report = np.asarray(state["bank"]), EpochReport.from_state(state.get("report"))
        if self.net is not None:
            self.net.load_state_dict({**self.net.state_dict(), **state["heads"]})

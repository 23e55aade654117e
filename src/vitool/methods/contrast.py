"""Cluster-contrast machinery of the unsupervised methods (Dai et al., "Cluster Contrast for
Unsupervised Person Re-Identification", ACCV 2022; alibaba/cluster-contrast-reid), and their shared
first stage and baseline, "DCL" (ADCA's stage 1: Yang et al., ACM MM 2022, yangbincv/ADCA): `vitool train --method dcl`.

Every epoch the engine calls ``epoch_labels``; here that means: extract eval-mode features of every
training image with the current model (the BNNeck feature, L2-normalised, no flip), cluster each
modality with the same function as `vitool cluster` (k-reciprocal Jaccard + DBSCAN), drop the outliers
(label -1) and build one memory of cluster centroids per modality. A visible and an infrared cluster
never share an id: visible clusters are 0..K_V-1 and infrared ones K_V..K_V+K_R-1, as `vitool cluster`
numbers them. DCL's loss is ClusterNCE (temperature 0.05) of each modality against its own memory, so
it learns each modality's identities and has no cross-modal term: it is the no-association baseline
the unsupervised methods are measured against.

The memories (``vitool.methods.memory``) move after each optimiser step (``after_step``). The
per-epoch association, for the methods that have one, goes through ``vitool.methods.association``,
which calls ``vitool.assign.assign``, the function behind `vitool assign-labels`.

One view per visible image: the references add a second, channel-exchanged view of every visible
image (ADCA: one random R/G/B channel copied into all three); we exchange the channels of a visible
image with probability 0.5 instead, the same mixture of plain and exchanged views at half the visible
compute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitool.data.datasets import Sample
from vitool.distributed import computed_on_main, gather_batch
from vitool.errors import VitoolError
from vitool.methods.association import ASSOCIATIONS, oracle_clusters
from vitool.methods.contract import EpochLabels, EpochReport, Method, RunSetup, TrainingContext, check_options
from vitool.methods.memory import MODALITIES, ClusterMemory, contrast_loss
from vitool.modality import INFRARED, MODALITY_NAMES, VISIBLE


@dataclass
class ClusteringOptions:
    """DCL's keys, shared by PCLHD and MULT: each modality re-clustered every epoch (k-reciprocal Jaccard
    distance + DBSCAN, as cluster-contrast-reid) and ClusterNCE memories of the clusters."""

    cluster_eps: float = 0.6  # DBSCAN radius (SYSU and LLCM 0.6, RegDB 0.3)
    cluster_k1: int = 30  # k-reciprocal neighbours of the Jaccard distance
    cluster_k2: int = 6  # neighbours of its query expansion
    cluster_min_samples: int = 4  # DBSCAN's core-point size
    cluster_oracle: bool = False  # diagnostic: each modality's true identities as its clusters
    memory_temperature: float = 0.05  # ClusterNCE temperature of every cluster memory
    memory_momentum: float = 0.1  # weight of the old prototype in each memory update

    def __post_init__(self) -> None:
        check_options(
            self,
            {
                "cluster_eps": (self.cluster_eps > 0, "a value > 0"),
                "cluster_k1": (self.cluster_k1 >= 1, "a value >= 1"),
                "cluster_k2": (self.cluster_k2 >= 1, "a value >= 1"),
                "cluster_min_samples": (self.cluster_min_samples >= 1, "a value >= 1"),
                "memory_temperature": (self.memory_temperature > 0, "a value > 0"),
                "memory_momentum": (0 <= self.memory_momentum < 1, "a value in [0, 1)"),
            },
        )


@dataclass
class CrossStageOptions(ClusteringOptions):
    """The keys of a method that runs DCL, then a stage that associates the two modalities' clusters every
    epoch (PCLHD, MULT). ``mult_alpha`` and ``mult_soft_weight`` belong to the mult association, which
    either method may use."""

    dcl_epochs: int = -1  # DCL epochs before the method's own stage; -1: the paper's (PCLHD 50, MULT 40)
    # hungarian | mult | ot; "": the method's own (PCLHD hungarian, MULT mult); oracle: diagnostic
    association: str = ""
    mult_alpha: float = 0.2  # mult association: weight of the initial labels in the label transfer
    mult_soft_weight: float = 0.7  # mult association: soft label = w one-hot + (1 - w) transfer

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(
            self,
            {
                "association": (self.association in ("", *ASSOCIATIONS), f"one of {', '.join(ASSOCIATIONS)}"),
                "mult_alpha": (0 <= self.mult_alpha <= 1, "a value in [0, 1]"),
                "mult_soft_weight": (0 <= self.mult_soft_weight <= 1, "a value in [0, 1]"),
            },
        )


class ClusterContrast(Method):
    """DCL: per-modality clustering every epoch and ClusterNCE against each modality's own memory.
    Subclasses add a second stage from ``dcl_epochs`` with ``stage2_labels`` / ``stage2_loss``."""

    name = "dcl"
    two_stage = False  # PCLHD and MULT: their own stage from ``dcl_epochs`` on
    stage2_independent = True  # False: stage 2 samples identity-aligned batches in one label space
    default_dcl_epochs = 0
    default_association = ""  # association = "" means this one (PCLHD hungarian, MULT mult)
    batch_shape = (8, 16)  # clusters x images per modality (ADCA, PCLHD: 128 images, 16 per cluster)
    visible_channel_exchange = 0.5
    # PCLHD's and MULT's released pipelines (CAJ's augmentations, their samplers, their flip-averaged test)
    erasing_style, infrared_channel_gray, sampler_replacement, test_flip = "channel", 0.5, 0, "mean_of_l2"
    sampler_style = "gallery"  # PCLHD's RandomMultipleGallerySampler (MULT: its own, identity-style)

    def __init__(self, setup: RunSetup, samples: list[Sample], options: ClusteringOptions) -> None:
        resolved = {}  # the options' stand-ins made explicit, so that the run's config.toml says what ran
        if getattr(options, "dcl_epochs", 0) < 0:
            resolved["dcl_epochs"] = self.default_dcl_epochs
        if getattr(options, "association", None) == "":
            resolved["association"] = self.default_association
        self.setup, self.options = setup, replace(options, **resolved)
        self.dcl_epochs = getattr(self.options, "dcl_epochs", self.default_dcl_epochs)
        self.modality = np.array([s.modality for s in samples])
        self.pid = np.array([s.pid for s in samples])
        self.rows_of = {m: np.flatnonzero(self.modality == m) for m in MODALITIES}
        self.intra = np.full(len(samples), -1, dtype=np.int64)
        self.offset = {VISIBLE: 0, INFRARED: 0}  # first global id of each modality's clusters
        self.memories: dict[Any, ClusterMemory] = {}
        self.stage2 = False
        self.epoch = 0
        self._report = EpochReport()
        self._pending: tuple[torch.Tensor, ...] | None = None  # the last batch, for after_step
        self.device = torch.device("cpu")

    def num_classes(self) -> int:
        return 0  # no classifier: the memories are the classifier

    def adjust_model(self, model_config) -> None:
        model_config.two_stream, model_config.gem_p = True, 3.0

    def train_module(self, model: nn.Module) -> nn.Module:
        self.device = next(model.parameters()).device
        return model

    # ------------------------------------------------------------------------------------- labels

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        self.epoch = epoch
        self.stage2 = self.two_stage and epoch >= self.dcl_epochs
        features = self._cluster(context)
        self._report = EpochReport(settings={"stage": 2 if self.stage2 else 1}) | self._cluster_report()
        if not self.stage2:  # each modality samples its own clusters
            return EpochLabels(self.intra, independent=True)
        labels = self.stage2_labels(context, features)
        return EpochLabels(labels, independent=self.stage2_independent, second=self.stage2_second_space())

    def _cluster(self, context: TrainingContext) -> np.ndarray:
        """Cluster each modality; set ``intra``, the offsets and the centroid memories. Returns the
        L2-normalised features the clustering saw."""
        from vitool.cluster import ClusterConfig, cluster_labels
        from vitool.modality import l2_normalise

        cfg = self.options
        fs = context.extract(context.samples)  # sharded over the processes and shared: the same on every one
        features = l2_normalise(fs.features)
        if cfg.cluster_oracle:  # diagnostic: what perfect clusters would give (reads the hidden identities)
            self.intra = oracle_clusters(self.pid, self.modality)
        else:
            clusters = ClusterConfig(
                eps=cfg.cluster_eps,
                k1=cfg.cluster_k1,
                k2=cfg.cluster_k2,
                min_samples=cfg.cluster_min_samples,
                device=self.device.type,  # the kNN where the model trains
            )
            self.intra = computed_on_main(cluster_labels, features, self.modality, clusters)
        for m, name in MODALITY_NAMES.items():
            own = self.intra[self.rows_of[m]]
            if len(np.unique(own[own >= 0])) < 2:
                outliers = float((own < 0).mean())
                raise VitoolError(
                    context.run_dir,
                    f"epoch {self.epoch}: clustering left fewer than two {name} clusters "
                    f"({outliers:.0%} outliers at cluster_eps {cfg.cluster_eps})",
                    "raise cluster_eps when most images are outliers, lower it when one cluster takes all",
                )
        vis_ids = self.intra[self.rows_of[VISIBLE]]
        self.offset = {VISIBLE: 0, INFRARED: int(vis_ids.max()) + 1}
        self.memories = {m: self.centroid_memory(features, self.intra, m) for m in MODALITIES}
        return features

    def centroid_memory(self, features: np.ndarray, labels: np.ndarray, m: int) -> ClusterMemory:
        """A memory of the centroids of modality ``m``'s clusters under ``labels`` (global ids)."""
        from vitool.assign import class_centres

        rows = self.rows_of[m]
        local = self.local(labels[rows], m)
        ids, centres = class_centres(features[rows], local)
        if not np.array_equal(ids, np.arange(len(ids))):
            raise VitoolError(None, "cluster ids are not contiguous", "report this as a bug")
        return self.new_memory(torch.as_tensor(centres))

    def new_memory(self, prototypes: torch.Tensor) -> ClusterMemory:
        cfg = self.options
        return ClusterMemory(prototypes.to(self.device), cfg.memory_temperature, cfg.memory_momentum)

    def local(self, labels: np.ndarray, m: int) -> np.ndarray:
        """Global cluster ids of modality ``m`` as rows of its memory (-1 stays -1)."""
        return np.where(labels >= 0, labels - self.offset[m], -1)

    def _cluster_report(self) -> EpochReport:
        from vitool.evaluation.diagnostics import label_diagnostics

        report = EpochReport()
        for m, name in MODALITY_NAMES.items():
            rows = self.rows_of[m]
            report.counts[f"{name}_clusters"] = len(self.memories[m])
            report.counts[f"{name}_outliers"] = round(float((self.intra[rows] < 0).mean()), 4)
            if (self.pid[rows] >= 0).all():  # diagnostics only: the hidden identities
                diag = label_diagnostics(self.pid[rows], self.modality[rows], self.intra[rows])
                report.quality[f"{name}_ari"] = round(diag["ari"], 4)
        return report

    def association_report(self, label: np.ndarray, space_modality: int) -> EpochReport:
        """How many of the other modality's images got a cluster of ``space_modality`` (coverage), how many of
        those clusters' majority identity is theirs (precision), and how many have a cluster of their own
        identity to be given at all (reachable): diagnostics from the hidden truth."""
        from vitool.evaluation.diagnostics import cross_modal_accuracy, cross_modal_reach

        other = self.modality != space_modality
        report = EpochReport(settings={"space": MODALITY_NAMES[space_modality]})
        coverage = float((label[other] >= 0).mean())
        report.quality["cross_coverage"] = round(coverage, 4)
        if (self.pid >= 0).all():
            accuracy = cross_modal_accuracy(self.pid, self.modality, label, space_modality)
            if accuracy is not None and coverage > 0:  # the unrounded coverage: a right association is 1, not 1.0001
                report.quality["cross_precision"] = round(accuracy / coverage, 4)
            reach = cross_modal_reach(self.pid, self.modality, label, space_modality)
            if reach is not None:
                report.quality["cross_reachable"] = round(reach, 4)
        return report

    def stage2_labels(self, context: TrainingContext, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def stage2_second_space(self) -> np.ndarray | None:
        """Labels of a second label space that half of every stage-2 batch is drawn from (MULT), or None."""
        return None

    def report(self) -> EpochReport:
        return self._report

    # --------------------------------------------------------------------------------------- loss

    def loss(self, out, labels, modality, rows) -> tuple[torch.Tensor, dict[str, float]]:
        feats = F.normalize(out["feat"].float(), dim=1)
        if self.stage2:
            terms = self.stage2_loss(out, feats, labels, modality, rows)
        else:
            terms = {}
            for m, name in MODALITY_NAMES.items():
                own = modality == m
                terms[f"contrast_{name}"] = contrast_loss(feats[own], self.memories[m], labels[own] - self.offset[m])
        self._pending = (feats.detach(), labels, modality, rows.to(labels.device))  # for after_step
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def after_step(self) -> None:
        """The memories move after the optimiser step, outside autograd, with the batch's detached features
        from every process."""
        if self._pending is not None:
            self.update_memories(*gather_batch(*self._pending))
            self._pending = None

    def update_memories(self, feats, labels, modality, rows) -> None:
        """DCL (stage 1 of every method): Cluster-Contrast's sequential update of each modality's memory."""
        for m in MODALITIES:
            own = modality == m
            self.memories[m].update_sequential(feats[own], labels[own] - self.offset[m])

    def stage2_loss(self, out, feats, labels, modality, rows) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # -------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {
            "intra": self.intra,
            "offset": self.offset,
            "memories": {m: mem.prototypes.cpu() for m, mem in self.memories.items()},
            "report": self._report.state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The memories are rebuilt from fresh clusters at the next epoch's start; kept for inspection."""
        self.intra, self.offset, self._report = (
            np.asarray(state["intra"]),
            state["offset"],
            EpochReport.from_state(state.get("report")),
        )
        self.memories = {m: self.new_memory(p) for m, p in state["memories"].items()}

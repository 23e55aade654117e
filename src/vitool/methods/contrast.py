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

Memories are tensors outside autograd, updated explicitly after the loss (``ClusterMemory.update_*``),
never inside a backward pass as the references do, so a loss on another modality's memory never
writes into it by accident. The per-epoch association, for the methods that
have one, goes through ``vitool.assign.assign``, the function behind `vitool assign-labels`.

One view per visible image: the references add a second, channel-exchanged view of every visible
image (ADCA: one random R/G/B channel copied into all three); we exchange the channels of a visible
image with probability 0.5 instead, the same mixture of plain and exchanged views at half the visible
compute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vitool.data.datasets import Sample
from vitool.errors import VitoolError
from vitool.methods import Method, broadcast_from_main
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
        # a copy: the updates after the loss change the prototypes in place, autograd keeps this one
        return feats @ self.prototypes.t().clone() / self.temperature

    def _blend(self, rows: torch.Tensor, x: torch.Tensor) -> None:
        m = self.momentum
        self.prototypes[rows] = F.normalize(m * self.prototypes[rows] + (1 - m) * x, dim=1)

    @torch.no_grad()
    def update_sequential(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """Cluster-Contrast's "CM": one momentum step per sample, in batch order."""
        for x, y in zip(feats.float(), labels.tolist(), strict=True):
            if y >= 0:
                self._blend(torch.tensor([y], device=x.device), x[None])

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
        (PCLHD's hard prototype, eq. 6 and 14; the released code's ``CMhard``)."""
        feats = feats.float()
        for y in torch.unique(labels[labels >= 0]).tolist():
            members = feats[labels == y]
            hardest = members[torch.argmin(members @ centroids.prototypes[y])]
            self._blend(torch.tensor([y], device=feats.device), hardest[None])


def contrast_loss(feats: torch.Tensor, memory: ClusterMemory, labels: torch.Tensor) -> torch.Tensor:
    """ClusterNCE: cross-entropy of the features' cosine logits against the memory (rows with label
    -1 are left out; 0 when none is left)."""
    keep = labels >= 0
    if not keep.any():
        return feats.sum() * 0.0
    return F.cross_entropy(memory.logits(feats[keep]), labels[keep])


def gather_batch(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The whole batch from every process of a distributed run (each holds every world-th image), so
    every process makes the same memory updates; the tensors themselves otherwise."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensors
    dist = torch.distributed
    world = dist.get_world_size()
    size = torch.tensor([len(tensors[0])], device=tensors[0].device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(sizes))
    out = []
    for t in tensors:
        padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
        padded[: len(t)] = t
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([part[: int(n)] for part, n in zip(parts, sizes, strict=True)]))
    return tuple(out)


class ClusterContrast(Method):
    """DCL: per-modality clustering every epoch and ClusterNCE against each modality's own memory.
    Subclasses add a second stage from ``config.dcl_epochs`` with ``stage2_labels`` / ``stage2_loss``."""

    name = "dcl"
    two_stage = False  # PCLHD and MULT: their own stage from ``dcl_epochs`` on
    default_dcl_epochs = 0
    batch_shape = (8, 16)  # clusters x images per modality (ADCA, PCLHD: 128 images, 16 per cluster)
    visible_channel_exchange = 0.5

    def __init__(self, config, samples: list[Sample]) -> None:
        self.config = config
        self.modality = np.array([s.modality for s in samples])
        self.pid = np.array([s.pid for s in samples])
        self.rows_of = {m: np.flatnonzero(self.modality == m) for m in MODALITIES}
        self.independent_labels = True  # each modality samples its own clusters
        self.intra = np.full(len(samples), -1, dtype=np.int64)
        self.offset = {VISIBLE: 0, INFRARED: 0}  # first global id of each modality's clusters
        self.memories: dict[Any, ClusterMemory] = {}
        self.stage2 = False
        self.epoch = 0
        self._report: dict[str, Any] = {}
        self.device = torch.device("cpu")
        self.dcl_epochs = config.dcl_epochs if config.dcl_epochs >= 0 else self.default_dcl_epochs
        if config.association and config.association not in ASSOCIATIONS:  # fail before any training
            raise VitoolError(None, f"association '{config.association}'", f"use one of {', '.join(ASSOCIATIONS)}")
        bounds = {  # key: (valid?, what is valid)
            "cluster_eps": (config.cluster_eps > 0, "> 0"),
            "cluster_k1": (config.cluster_k1 >= 1, ">= 1"),
            "cluster_k2": (config.cluster_k2 >= 1, ">= 1"),
            "cluster_min_samples": (config.cluster_min_samples >= 1, ">= 1"),
            "memory_temperature": (config.memory_temperature > 0, "> 0"),
            "memory_momentum": (0 <= config.memory_momentum < 1, "in [0, 1)"),
            "pclhd_dynamic_samples": (config.pclhd_dynamic_samples >= 1, ">= 1"),
        }
        for key, (valid, rule) in bounds.items():
            if not valid:
                raise VitoolError(None, f"{key} = {getattr(config, key)}", f"use a value {rule}")

    def num_classes(self) -> int:
        return 0  # no classifier: the memories are the classifier

    def adjust_model(self, config) -> None:
        config.two_stream, config.gem_p = True, 3.0

    def train_module(self, model: nn.Module) -> nn.Module:
        self.device = next(model.parameters()).device
        return model

    # ------------------------------------------------------------------------------------- labels

    def epoch_labels(self, engine, epoch: int) -> np.ndarray:
        self.epoch = epoch
        self.stage2 = self.two_stage and epoch >= self.dcl_epochs
        features = self._cluster(engine)
        self._report = {"stage": 2 if self.stage2 else 1, **self._cluster_report()}
        if not self.stage2:
            self.independent_labels = True
            return self.intra
        return self.stage2_labels(engine, features)

    def _cluster(self, engine) -> np.ndarray:
        """Cluster each modality; set ``intra``, the offsets and the centroid memories. Returns the
        L2-normalised features the clustering saw."""
        from vitool.cluster import ClusterConfig, cluster_labels
        from vitool.modality import l2_normalise

        cfg = self.config
        fs = engine.features(engine.train_samples, {"dataset": "manifest", "split": "train"})
        features = broadcast_from_main(l2_normalise(fs.features))  # one set of features for every process
        if cfg.cluster_oracle:  # diagnostic: what perfect clusters would give (reads the hidden identities)
            intra = oracle_clusters(self.pid, self.modality)
        elif engine.rank == 0:
            clusters = ClusterConfig(
                eps=cfg.cluster_eps, k1=cfg.cluster_k1, k2=cfg.cluster_k2, min_samples=cfg.cluster_min_samples
            )
            intra = cluster_labels(features, self.modality, clusters)
        else:
            intra = None
        self.intra = broadcast_from_main(intra)
        for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            own = self.intra[self.rows_of[m]]
            if len(np.unique(own[own >= 0])) < 2:
                outliers = float((own < 0).mean())
                raise VitoolError(
                    engine.run_dir,
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
        cfg = self.config
        return ClusterMemory(prototypes.to(self.device), cfg.memory_temperature, cfg.memory_momentum)

    def local(self, labels: np.ndarray, m: int) -> np.ndarray:
        """Global cluster ids of modality ``m`` as rows of its memory (-1 stays -1)."""
        return np.where(labels >= 0, labels - self.offset[m], -1)

    def _cluster_report(self) -> dict[str, Any]:
        from vitool.diagnostics import label_diagnostics

        out: dict[str, Any] = {}
        for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
            rows = self.rows_of[m]
            out[f"{name}_clusters"] = len(self.memories[m])
            out[f"{name}_outliers"] = round(float((self.intra[rows] < 0).mean()), 4)
            if (self.pid[rows] >= 0).all():  # diagnostics only: the hidden identities
                diag = label_diagnostics(self.pid[rows], self.modality[rows], self.intra[rows])
                out[f"{name}_ari"] = round(diag["ari"], 4)
        return out

    def association_report(self, label: np.ndarray, space: int) -> dict[str, Any]:
        """How many of the other modality's images got a cluster of ``space`` (coverage) and how many of
        those clusters' majority identity is theirs (precision): diagnostics from the hidden truth."""
        from vitool.diagnostics import cross_modal_accuracy

        other = self.modality != space
        out: dict[str, Any] = {"space": "visible" if space == VISIBLE else "infrared"}
        out["cross_coverage"] = round(float((label[other] >= 0).mean()), 4)
        if (self.pid >= 0).all():
            accuracy = cross_modal_accuracy(self.pid, self.modality, label, space)
            if accuracy is not None and out["cross_coverage"] > 0:
                out["cross_precision"] = round(accuracy / out["cross_coverage"], 4)
        return out

    def stage2_labels(self, engine, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        return self._report

    # --------------------------------------------------------------------------------------- loss

    def loss(self, out, labels, modality, rows) -> tuple[torch.Tensor, dict[str, float]]:
        feats = F.normalize(out["feat"].float(), dim=1)
        if self.stage2:
            terms = self.stage2_loss(out, feats, labels, modality, rows)
        else:
            terms = {}
            for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
                own = modality == m
                terms[f"contrast_{name}"] = contrast_loss(feats[own], self.memories[m], labels[own] - self.offset[m])
        # the memories move after the loss, outside autograd, with the whole batch of every process
        self.update_memories(*gather_batch(feats.detach(), labels, modality, rows.to(labels.device)))
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

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
            "report": self._report,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The memories are rebuilt from fresh clusters at the next epoch's start; kept for inspection."""
        self.intra, self.offset, self._report = np.asarray(state["intra"]), state["offset"], state.get("report", {})
        self.memories = {m: self.new_memory(p) for m, p in state["memories"].items()}


ASSOCIATIONS = ("hungarian", "mult", "ot", "oracle")


def oracle_clusters(pid: np.ndarray, modality: np.ndarray) -> np.ndarray:
    """Diagnostic only (``cluster_oracle = true``): each modality's true identities as its clusters,
    numbered as `vitool cluster` numbers clusters (visible 0..K_V-1, infrared after)."""
    if (pid < 0).any():
        raise VitoolError(None, "cluster_oracle needs the training identities", "use a labelled dataset")
    intra = np.empty(len(pid), dtype=np.int64)
    offset = 0
    for m in MODALITIES:
        own = modality == m
        intra[own] = np.unique(pid[own], return_inverse=True)[1] + offset
        offset = int(intra[own].max()) + 1
    return intra


def oracle_association(pid: np.ndarray, modality: np.ndarray, intra: np.ndarray, space: str):
    """Diagnostic only (``association = "oracle"``): each image of the other modality takes the largest
    cluster of ``space`` whose majority identity is its own (none if there is none). It reads the
    hidden identities, so it measures what a perfect association of these clusters would give."""
    from vitool.assign import Assignment
    from vitool.diagnostics import majority_identity

    in_space = modality == (VISIBLE if space == "visible" else INFRARED)
    own = in_space & (intra >= 0)
    owner = majority_identity(intra[own], pid[own])
    ids, sizes = np.unique(intra[own], return_counts=True)
    best: dict[int, int] = {}
    for cluster in ids[np.argsort(-sizes, kind="stable")].tolist():
        best.setdefault(owner[cluster], cluster)
    label = intra.copy()
    label[~in_space] = [best.get(int(p), -1) for p in pid[~in_space]]
    return Assignment(label=label, intra_label=intra, attrs={"space": space})


def associate(name: str, features: np.ndarray, modality: np.ndarray, intra: np.ndarray, space: str, config, pid=None):
    """Cross-modal association of this epoch's clusters through ``vitool.assign.assign``. ``space``
    (visible | infrared) is the modality whose cluster ids the other takes, for the methods that can
    choose it (hungarian, mult); ot always ends in the visible space. The result's ``attrs["space"]``
    says which space it is."""
    from vitool.assign import assign

    if name not in ASSOCIATIONS:
        raise VitoolError(None, f"association '{name}'", f"use one of {', '.join(ASSOCIATIONS)}")
    if name == "oracle":
        if pid is None or (pid < 0).any():
            raise VitoolError(None, "association 'oracle' needs the training identities", "use a labelled dataset")
        return oracle_association(pid, modality, intra, space)
    params: dict[str, Any] = {}
    if name in ("hungarian", "mult"):
        params["space"] = space
    if name == "mult":
        params |= {
            "alpha": config.mult_alpha,
            "soft_weight": config.mult_soft_weight,
            "k1": config.cluster_k1,
            "k2": config.cluster_k2,
        }
    result = assign(name, features, modality, intra, where="this epoch's clusters", **params)
    result.attrs.setdefault("space", "visible")
    return result

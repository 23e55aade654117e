"""Training methods: each supplies its network adjustments and extra heads, its label space, its
per-epoch relabelling hook, its batch shape and its losses; the engine (vitool.engine.trainer) owns the loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitool.data.datasets import Sample
from vitool.errors import VitoolError
from vitool.modality import VISIBLE

METHODS = ("supervised", "otla", "visible", "experts", "dcl", "pclhd", "mult")


@dataclass(frozen=True)
class RunPlan:
    """The run's length, for the settings that papers define in iterations and vitool scales to the run."""

    epochs: int
    steps_per_epoch: int
    stages: tuple[int, ...] = ()  # the epochs that start a new learning-rate schedule


class Method:
    """The interface the engine drives. ``labels`` are per training row (-1 = not used this epoch)."""

    name = "base"
    batch_shape = (8, 4)  # identities per batch, images per identity and modality (AGW)
    visible_grayscale = 0.0  # chance a visible training image is turned gray (OTLA 0.5)
    visible_channel_exchange = 0.0  # chance it becomes one random colour channel, thrice (ADCA)
    independent_labels = False  # True: each modality's labels are its own id space (weak supervision)

    def num_classes(self) -> int:
        raise NotImplementedError

    def adjust_model(self, config) -> None:
        """Change the network's ModelConfig before it is built (e.g. one shared stem)."""

    def train_module(self, model: nn.Module) -> nn.Module:
        """The module the loop calls: the model, or the model wrapped with the method's extra heads."""
        return model

    def plan(self, plan: RunPlan) -> None:
        """Learn the run's length before the first epoch (e.g. to scale a ramp defined in iterations)."""

    def schedule_restart(self) -> int | None:
        """The epoch at which the method's released code restarts the learning-rate schedule and the
        optimiser (a second stage), if any: the engine's schedule stage when ``schedule_stages = [-1]``."""
        return None

    def epoch_labels(self, engine: Any, epoch: int) -> np.ndarray:
        """Labels of every training row for this epoch's batches (a relabelling hook may run here)."""
        raise NotImplementedError

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's loss and its logged terms; ``rows`` are the images' training-row indices."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Runs after every optimiser step (e.g. a momentum encoder follows the model)."""

    def adopt_labels(self, labels: np.ndarray) -> None:
        """In a distributed run every process takes process 0's labels for the epoch."""

    def report(self) -> dict[str, Any]:
        """Facts about this epoch's labels for the log (e.g. pseudo-label accuracy against ground truth)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def broadcast_from_main(value: Any) -> Any:
    """Process 0's value in every process of a distributed run (BN statistics differ a little between
    processes, so their labels, clusters or matches would too); the value itself otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        shared = [value]
        torch.distributed.broadcast_object_list(shared, src=0)
        return shared[0]
    return value


def visible_training_labels(config, samples: list[Sample]) -> tuple[np.ndarray, str]:
    """Per training row, the visible label a label-efficient method starts from (-1 elsewhere), and where
    it came from: the ground-truth identities (semi-supervised), or ``config.labels`` (a labels file, e.g.
    `vitool cluster` output: unsupervised). Visible classes with one member are dropped, as OTLA does."""
    modality = np.array([s.modality for s in samples])
    if not config.labels:
        labels = np.array([s.pid for s in samples], dtype=np.int64)
        source = "ground truth"
    else:
        labels = labels_from_file(Path(config.labels), samples)
        source = str(config.labels)
    labels = np.where(modality == VISIBLE, labels, -1)
    classes, counts = np.unique(labels[labels >= 0], return_counts=True)
    labels[np.isin(labels, classes[counts < 2])] = -1
    if not (labels >= 0).any():
        raise VitoolError(config.labels or None, "no visible class has two or more images", "re-cluster")
    return labels, source


def labels_from_file(path: Path, samples: list[Sample], field: str = "label") -> np.ndarray:
    """The ``label`` (or ``intra_label``) of each training sample in a labels file, joined by image path."""
    from vitool.io import read_labels, rows_by_path

    ls = read_labels(path)
    values = getattr(ls, field)
    if values is None:
        raise VitoolError(path, f"has no {field}", "use a per-modality labels file (e.g. vitool weak-labels)")
    fix = "use a labels file made from this dataset's training split (e.g. vitool cluster on its features)"
    return values[rows_by_path(ls, [s.path for s in samples], path, "training images", fix)].astype(np.int64)


def build_method(config, samples: list[Sample]) -> Method:
    if config.method == "supervised":
        from vitool.methods.supervised import Supervised

        if config.labels:
            raise VitoolError(config.labels, "--labels is not used by the supervised method", "drop it, or use otla")

        return Supervised(np.array([s.pid for s in samples]))
    if config.method in ("otla", "visible"):
        from vitool.methods.otla import OTLA

        return OTLA(config, samples, use_infrared=config.method == "otla")
    if config.method == "experts":
        from vitool.methods.experts import Experts

        return Experts(config, samples)
    if config.method in ("dcl", "pclhd", "mult"):
        if config.labels:
            raise VitoolError(config.labels, f"--labels is not used by {config.method}", "it clusters every epoch")
        from vitool.methods.contrast import ClusterContrast
        from vitool.methods.mult import MULT
        from vitool.methods.pclhd import PCLHD

        return {"dcl": ClusterContrast, "pclhd": PCLHD, "mult": MULT}[config.method](config, samples)
    raise VitoolError(None, f"unknown method '{config.method}'", f"use one of {', '.join(METHODS)}")

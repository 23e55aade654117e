"""What the training-speed benchmarks share: a supervised vitool Engine on synthetic data, and a DataLoader
of its epoch-0 batches (8 identities x 4 images per modality = 64 images), the same batches for every
loop a benchmark compares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vitool.data.samplers import CrossModalIdentitySampler
from vitool.data.transforms import train_transform
from vitool.engine.config import TrainConfig
from vitool.engine.trainer import Engine, TrainSet
from vitool.modality import INFRARED, VISIBLE


def supervised_engine(root: Path, run: Path, backbone: str, batches: int, **config) -> Engine:
    """A one-epoch supervised run of ``batches`` steps, Adam at 3.5e-4, no warm-up or decay."""
    settings = dict(epochs=1, optimizer="adam", lr=3.5e-4, warmup_epochs=0, milestones=[], batches_per_epoch=batches)
    config = TrainConfig(dataset="sysu", root=str(root), backbone=backbone, pretrained="none", **settings, **config)
    return Engine(config, run, log=lambda _: None)


def batch_loader(engine: Engine, batches: int) -> torch.utils.data.DataLoader:
    samples = engine.train_samples
    size = (engine.model.config.height, engine.model.config.width)
    dataset = TrainSet(samples, engine.root, train_transform(*size))
    modality = np.array([s.modality for s in samples])
    labels = dataset.labels = engine.method.epoch_labels(engine.context, 0).labels
    vis, ir = labels[modality == VISIBLE], labels[modality == INFRARED]
    sampler = CrossModalIdentitySampler(vis, ir, int((modality == VISIBLE).sum()), 8, 4, seed=0, batches=batches)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler)

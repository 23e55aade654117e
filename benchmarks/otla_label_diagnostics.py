"""How well a trained model's classifier labels the infrared training images (docs/results.md, the diagnostic runs).

For a `vitool train` checkpoint (otla or visible), on the training images of its own run: the
classifier's argmax accuracy per modality, the share of infrared images nearest their own person's
visible class centre in the network's features (what the modality gap leaves to any labelling), and the
accuracy of the Sinkhorn labels (lambda 25) from its infrared predictions made in eval mode (vitool) and
with batch-statistics BN over shuffled infrared-only batches of 64 (the reference code's way; running
statistics left untouched). Ground truth is used only to score. Prints one JSON object.

Usage:  python benchmarks/otla_label_diagnostics.py RUN/last.pt [ROOT]

ROOT scores the same training identities in another copy of the dataset, e.g. one written by
`vitool synth --ir-material 0` with the same seed (same people and visible images, other infrared ones).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from vitool.assign.ot import sinkhorn_equipartition
from vitool.data.datasets import image_root, load_split
from vitool.data.images import ImageDataset
from vitool.data.transforms import test_transform
from vitool.engine.config import load_config
from vitool.engine.trainer import split_validation
from vitool.errors import VitoolError
from vitool.models.checkpoint import load_checkpoint, model_from_checkpoint


def nearest_centre_accuracy(
    visible: np.ndarray, visible_pid: np.ndarray, infrared: np.ndarray, pid: np.ndarray
) -> float:
    """Percent of infrared features whose nearest visible identity centre (cosine) is their own identity's."""

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    ids = np.unique(visible_pid)
    centres = unit(np.stack([unit(visible[visible_pid == i]).mean(0) for i in ids]))
    return round(100 * float((ids[(unit(infrared) @ centres.T).argmax(1)] == pid).mean()), 1)


@torch.no_grad()
def predictions(model, dataset: ImageDataset, batch_statistics: bool) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the classifier and the features, in dataset order; shuffled batches when BN uses batch
    statistics."""
    model.eval()
    if batch_statistics:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.train()
                module.momentum = 0.0  # batch statistics, running statistics unchanged
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).numpy()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order.tolist()), batch_size=64)
    outputs = [model(x, m) for x, m, _ in loader]
    probs = np.concatenate([torch.softmax(out["logits"], 1).numpy() for out in outputs])
    feats = np.concatenate([out["feat"].numpy() for out in outputs])
    inverse = np.argsort(order)
    return probs[inverse], feats[inverse]


def main() -> None:
    checkpoint = sys.argv[1]
    config = load_config(None, load_checkpoint(checkpoint)["config"])
    if len(sys.argv) > 2:
        config.root = sys.argv[2]
    samples = sorted(load_split(config.dataset, config.root, "train", config.trial), key=lambda s: s.modality)
    train, _ = split_validation(samples, config.val_ids, config.seed)
    classes = np.unique([s.pid for s in train if s.modality == 0])  # classifier column j = j-th visible id
    model = model_from_checkpoint(checkpoint)
    transform = test_transform(model.config.height, model.config.width)
    report = {"checkpoint": checkpoint, "root": str(config.root)}
    for modality, name in ((0, "visible"), (1, "infrared")):
        rows = [s for s in train if s.modality == modality]
        pid = np.array([s.pid for s in rows])
        dataset = ImageDataset(rows, image_root(config.dataset, config.root), transform)
        probs, feats = predictions(model_from_checkpoint(checkpoint), dataset, batch_statistics=False)
        report[f"{name}_argmax_accuracy"] = round(100 * float((classes[probs.argmax(1)] == pid).mean()), 1)
        if name == "visible":
            visible_feats, visible_pid = feats, pid
        else:  # eval mode is the prediction above; batch statistics need a fresh model
            report["infrared_nearest_visible_centre"] = nearest_centre_accuracy(visible_feats, visible_pid, feats, pid)
            batch_bn, _ = predictions(model_from_checkpoint(checkpoint), dataset, batch_statistics=True)
            for mode, p in (("eval_bn", probs), ("batch_bn", batch_bn)):
                best, _, _ = sinkhorn_equipartition(np.log(np.clip(p.astype(np.float64), 1e-300, None)), 25.0)
                report[f"infrared_sinkhorn_accuracy_{mode}"] = round(100 * float((classes[best] == pid).mean()), 1)
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except VitoolError as exc:  # a bad checkpoint or ROOT: one line, as the CLI does
        sys.exit(f"vitool: error: {exc.line()}")

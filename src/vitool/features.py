"""Feature extraction: run a model over a split and collect the embeddings a features file stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vitool.data.datasets import Sample
from vitool.data.images import ImageDataset
from vitool.data.transforms import test_transform
from vitool.io import FeatureSet
from vitool.models.network import VIReIDNet


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from vitool.errors import VitoolError

        raise VitoolError(None, "--device cuda but no CUDA device is visible", "use --device cpu or auto")
    return torch.device(device)


@torch.no_grad()
def extract(
    model: VIReIDNet,
    samples: list[Sample],
    root: Path,
    device: torch.device,
    batch_size: int = 64,
    flip: bool = False,
    num_workers: int = 0,
    amp: bool = True,
    on_batch: Callable[[int], None] | None = None,
    cache=None,
) -> dict[str, np.ndarray]:
    """Post-BN ``features``, ``features_pre_bn`` and, with a classifier, softmax ``probs``, in sample order.

    ``flip`` averages each image with its horizontal mirror (as DEEN and CAJ test). AMP (fp16
    autocast) is used on CUDA only; outputs are stored as float32.
    """
    model = model.to(device).eval()
    dataset = ImageDataset(samples, root, test_transform(model.config.height, model.config.width), cache)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    use_amp = amp and device.type == "cuda"
    outputs: dict[str, list[np.ndarray]] = {"features": [], "features_pre_bn": [], "probs": []}
    for images, modality, _ in loader:
        images, modality = images.to(device, non_blocking=True), modality.to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            out = model(images, modality)
            if flip:
                mirrored = model(images.flip(3), modality)
                out = {k: (v + mirrored[k]) / 2 for k, v in out.items()}
        outputs["features"].append(out["feat"].float().cpu().numpy())
        outputs["features_pre_bn"].append(out["pre_bn"].float().cpu().numpy())
        if "logits" in out:
            outputs["probs"].append(torch.softmax(out["logits"].float(), dim=1).cpu().numpy())
        if on_batch:
            on_batch(len(images))
    return {k: np.concatenate(v).astype(np.float32) for k, v in outputs.items() if v}


def extract_featureset(
    model: VIReIDNet,
    samples: list[Sample],
    root: Path,
    attrs: dict,
    device: torch.device,
    batch_size: int = 64,
    flip: bool = False,
    num_workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    cache=None,
) -> FeatureSet:
    """A features file's content (without provenance) for ``samples``, in their order."""
    out = extract(model, samples, root, device, batch_size, flip, num_workers, on_batch=on_batch, cache=cache)
    return FeatureSet(
        features=out["features"],
        path=np.array([s.path for s in samples], dtype=object),
        pid=np.array([s.pid for s in samples], dtype=np.int64),
        cam=np.array([s.cam for s in samples], dtype=np.int64),
        modality=np.array([s.modality for s in samples], dtype=np.uint8),
        features_pre_bn=out["features_pre_bn"],
        probs=out.get("probs"),
        attrs=attrs,
    )

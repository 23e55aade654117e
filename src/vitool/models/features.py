"""Feature extraction: run a model over a split and collect the embeddings a features file stores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vitool.data.datasets import Sample, sample_columns
from vitool.data.images import ImageDataset
from vitool.data.transforms import test_transform
from vitool.io import FeatureSet
from vitool.models.network import VIReIDNet


@torch.no_grad()
def extract(
    model: VIReIDNet,
    samples: list[Sample],
    root: Path,
    device: torch.device,
    batch_size: int = 64,
    flip: str | None = None,
    num_workers: int = 0,
    amp: torch.dtype | None | str = "auto",
    on_batch: Callable[[int], None] | None = None,
    cache=None,
    memory_format: torch.memory_format = torch.contiguous_format,
    raw: bool = False,
) -> dict[str, np.ndarray]:
    """Post-BN ``features``, ``features_pre_bn`` and, with a classifier, softmax ``probs``, in sample order.

    ``flip`` ("none", "mean", "mean_of_l2"; default: the model's ``test_flip``) averages each image's
    features with its horizontal mirror's (as DEEN and CAJ test), "mean_of_l2" after L2-normalising each
    (as the Cluster-Contrast-derived repositories test); with the model's ``test_l2`` the features are
    then L2-normalised. ``amp``: the autocast dtype (a training run's own), None for none, or "auto" (fp16
    on CUDA, none elsewhere); outputs are stored as float32. ``raw``: the network's outputs as they are,
    without the test recipe (no flip, no L2), as the methods' per-epoch clustering and association read them.
    """
    model = model.to(device).eval()
    dataset = ImageDataset(samples, root, test_transform(model.config.height, model.config.width), cache)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=device.type == "cuda"
    )
    if amp == "auto":
        amp = torch.float16 if device.type == "cuda" else None
    outputs: dict[str, list[np.ndarray]] = {"features": [], "features_pre_bn": [], "probs": []}
    flip = "none" if raw else model.config.test_flip if flip is None else flip
    l2 = model.config.test_l2 and not raw
    for images, modality, _ in loader:
        images = images.to(device, non_blocking=True, memory_format=memory_format)  # modality stays on the host
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = recipe_outputs(model, images, modality, flip, l2)
        outputs["features"].append(out["feat"].float().cpu().numpy())
        outputs["features_pre_bn"].append(out["pre_bn"].float().cpu().numpy())
        if "logits" in out:
            outputs["probs"].append(torch.softmax(out["logits"].float(), dim=1).cpu().numpy())
        if on_batch:
            on_batch(len(images))
    return {k: np.concatenate(v).astype(np.float32) for k, v in outputs.items() if v}


def recipe_outputs(
    forward: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    images: torch.Tensor,
    modality: torch.Tensor,
    flip: str,
    l2: bool,
) -> dict[str, torch.Tensor]:
    """``forward``'s outputs made into test features: flip averaging and L2 as in :func:`extract`.

    Also what ``vitool export`` puts in the ONNX graph, so the exported model follows the same recipe.
    """
    out = {k: v.float() for k, v in forward(images, modality).items()}
    if flip != "none":
        mirrored = {k: v.float() for k, v in forward(images.flip(3), modality).items()}
        for key in out:
            first, second = out[key], mirrored[key]
            if flip == "mean_of_l2" and key != "logits":
                first, second = F.normalize(first, dim=1), F.normalize(second, dim=1)
            out[key] = (first + second) / 2
    if l2:
        out["feat"], out["pre_bn"] = F.normalize(out["feat"], dim=1), F.normalize(out["pre_bn"], dim=1)
    return out


def extract_featureset(
    model: VIReIDNet,
    samples: list[Sample],
    root: Path,
    attrs: dict,
    device: torch.device,
    batch_size: int = 64,
    flip: str | None = None,
    num_workers: int = 0,
    on_batch: Callable[[int], None] | None = None,
    cache=None,
    amp: torch.dtype | None | str = "auto",
    memory_format: torch.memory_format = torch.contiguous_format,
    raw: bool = False,
) -> FeatureSet:
    """A features file's content (without provenance) for ``samples``, in their order."""
    out = extract(model, samples, root, device, batch_size, flip, num_workers, amp, on_batch, cache, memory_format, raw)
    return FeatureSet(
        features=out["features"],
        **sample_columns(samples),
        features_pre_bn=out["features_pre_bn"],
        probs=out.get("probs"),
        attrs=attrs,
    )

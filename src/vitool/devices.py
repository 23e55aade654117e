"""Where to compute: ``--device auto|cpu|cuda`` as a torch device, with one clear line when CUDA is asked
for and none is visible."""

from __future__ import annotations

import torch

from vitool.errors import VitoolError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise VitoolError(None, "--device cuda but no CUDA device is visible", "use --device cpu or auto")
    return torch.device(device)

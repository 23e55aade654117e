"""Self-describing model checkpoints: the model config travels with the weights, so
``extract-features --checkpoint`` and ``evaluate --checkpoint`` need nothing else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vitool import __version__
from vitool.errors import VitoolError
from vitool.models.network import ModelConfig, VIReIDNet

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, model: VIReIDNet, extra: dict[str, Any] | None = None) -> None:
    """Atomic write: a killed process never leaves a truncated checkpoint under the final name."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    state = {
        "vitool_checkpoint": CHECKPOINT_FORMAT,
        "vitool_version": __version__,
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        **(extra or {}),
    }
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # a full disk surfaces as either, depending on where it fails
        raise VitoolError(
            path,
            f"could not be written ({exc})".replace("\n", " "),
            "free disk space; any earlier file there is intact",
        ) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise VitoolError(path, "checkpoint does not exist", "check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise VitoolError(
            path, f"cannot be read as a torch checkpoint ({type(exc).__name__})", "pass a vitool .pt"
        ) from None
    if not isinstance(state, dict) or state.get("vitool_checkpoint") != CHECKPOINT_FORMAT:
        raise VitoolError(
            path,
            "is not a vitool checkpoint (no vitool_checkpoint=1 entry)",
            "pass a checkpoint written by vitool train, or use --backbone/--pretrained",
        )
    return state


def model_from_checkpoint(path: str | Path) -> VIReIDNet:
    state = load_checkpoint(path)
    config = ModelConfig(**state["model_config"])
    model = VIReIDNet(config, pretrained="none")
    model.load_state_dict(state["model_state"])
    return model

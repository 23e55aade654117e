"""Training methods: each supplies its label space, its per-epoch relabelling hook and its losses; the
engine (vitool.engine.trainer) owns the loop."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vitool.errors import VitoolError

METHODS = ("supervised",)


class Method:
    """The interface the engine drives. ``labels`` are per training row (-1 = not used this epoch)."""

    name = "base"

    def num_classes(self) -> int:
        raise NotImplementedError

    def epoch_labels(self, engine: Any, epoch: int) -> np.ndarray:
        """Labels of every training row for this epoch's batches (a relabelling hook may run here)."""
        raise NotImplementedError

    def loss(self, out: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def build_method(name: str, pids: np.ndarray) -> Method:
    if name == "supervised":
        from vitool.methods.supervised import Supervised

        return Supervised(pids)
    raise VitoolError(None, f"unknown method '{name}'", f"use one of {', '.join(METHODS)}")

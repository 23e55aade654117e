"""The two modalities, as every stage file stores them (``modality`` uint8), and small vector helpers
that every stage shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy is imported where a helper runs: the command line reads the names without it
    import numpy as np

VISIBLE, INFRARED = 0, 1
MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}
MODALITY_OF = {name: m for m, name in MODALITY_NAMES.items()}  # "visible" -> 0, as label spaces are named


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (rows of zeros stay zero)."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norm, 1e-12)

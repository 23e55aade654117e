"""The two modalities, as every stage file stores them (``modality`` uint8), and small vector helpers
that every stage shares."""

from __future__ import annotations

import numpy as np

VISIBLE, INFRARED = 0, 1
MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32 (rows of zeros stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
    return x / np.maximum(norm, 1e-12)

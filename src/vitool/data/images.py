"""Image loading with explicit RGB conversion: SYSU infrared JPEGs and RegDB thermal BMPs may be stored
with one channel, and the reference loaders rely on them having three."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vitool.data.datasets import Sample
from vitool.errors import VitoolError


def load_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise VitoolError(path, "image does not exist", "check the dataset root") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise VitoolError(path, f"cannot be decoded as an image ({type(exc).__name__})", "replace the file") from None


class ImageDataset(Dataset):
    """Yields (image tensor, modality, row index) for a list of samples under ``root``.

    With an image cache (vitool.data.cache.ImageCache), cached images are read from it instead.
    """

    def __init__(self, samples: list[Sample], root: Path, transform, cache=None) -> None:
        self.samples, self.root, self.transform, self.cache = samples, Path(root), transform, cache

    def __len__(self) -> int:
        return len(self.samples)

    def image(self, i: int, transform=None) -> torch.Tensor:
        rel = self.samples[i].path
        img = self.cache.load(rel) if self.cache is not None and rel in self.cache else load_rgb(self.root / rel)
        return (transform or self.transform)(img)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        return self.image(i), self.samples[i].modality, i

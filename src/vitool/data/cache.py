"""An optional cache of pre-resized uint8 images in one HDF5 file, so data loading keeps up with the GPU.

The released codes pre-resize SYSU-MM01 into .npy arrays (AGW's ``pre_process_sysu.py``, with its pains: missing or
stale caches, hard-coded paths). Here the cache is keyed by each image's relative path and records the
size it was made for. Images are resized with Lanczos, as the references' ANTIALIAS did; a transform
given a cached image at its own size leaves the size alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from PIL import Image

from vitool.data.datasets import Sample
from vitool.data.images import load_rgb
from vitool.errors import VitoolError
from vitool.io import IMAGE_CACHE as CACHE_FORMAT
from vitool.io import atomic_output


def build_cache(
    samples: list[Sample],
    root: Path,
    height: int,
    width: int,
    output: Path,
    overwrite: bool = False,
    on_image: Callable[[], None] | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    with atomic_output(output, overwrite) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs["vitool_format"] = CACHE_FORMAT
        handle.attrs["vitool_version"] = np.int64(1)
        handle.attrs["provenance"] = json.dumps(provenance or {})
        handle.attrs["height"], handle.attrs["width"] = height, width
        handle.create_dataset("path", data=[s.path for s in samples], dtype=h5py.string_dtype("utf-8"))
        images = handle.create_dataset(
            "images", (len(samples), height, width, 3), dtype=np.uint8, chunks=(1, height, width, 3)
        )
        for i, s in enumerate(samples):
            images[i] = np.asarray(load_rgb(root / s.path).resize((width, height), Image.LANCZOS))
            if on_image:
                on_image()


class ImageCache:
    """Reads cached images by relative path; opens the file lazily, once per DataLoader worker."""

    def __init__(self, path: str | Path, height: int, width: int) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VitoolError(self.path, "image cache does not exist", "make it with `vitool cache`")
        with h5py.File(self.path, "r") as handle:
            if handle.attrs.get("vitool_format") != CACHE_FORMAT:
                raise VitoolError(self.path, "is not a vitool image cache", "make it with `vitool cache`")
            size = (int(handle.attrs["height"]), int(handle.attrs["width"]))
            if size != (height, width):
                raise VitoolError(
                    self.path,
                    f"holds {size[0]}x{size[1]} images, the model needs {height}x{width}",
                    "make a cache at the model's size",
                )
            self.index = {p: i for i, p in enumerate(handle["path"].asstr()[()])}
        self._images, self._pid = None, None

    def __contains__(self, rel: str) -> bool:
        return rel in self.index

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None, "_pid": None}  # h5py handles do not cross process boundaries

    def load(self, rel: str) -> Image.Image:
        if self._images is None or self._pid != os.getpid():  # HDF5 is not fork-safe: a forked worker reopens
            self._images, self._pid = h5py.File(self.path, "r")["images"], os.getpid()
        return Image.fromarray(self._images[self.index[rel]])

"""Training throughput of the engine against a plain PyTorch loop of the same model, batches and losses,
in the same process (target: the engine's overhead stays within 10%), and extract-features throughput
with and without the image cache.

Both consume the same DataLoader (same dataset, sampler and transforms), so the difference is what
the engine adds per step: AMP context, loss bookkeeping, the finiteness check and the LR schedule.

Usage:  python benchmarks/train_speed.py [--batches 12] [--backbone mobilenet_v2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _engine_batches import batch_loader, supervised_engine

from vitool.data.synth import SynthConfig, generate
from vitool.engine.trainer import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--backbone", default="mobilenet_v2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sysu"
        generate(root, SynthConfig("sysu", train_ids=24, test_ids=4, images=3, seed=0))
        engine = supervised_engine(root, Path(tmp) / "run", args.backbone, args.batches)
        model, method, optimizer = engine.model, engine.method, engine.optimizer

        def loader():
            return batch_loader(engine, args.batches)

        def plain() -> float:
            model.train()
            start, images = time.perf_counter(), 0
            for x, m, y, rows in loader():
                out = model(x, m)
                loss, _ = method.loss(out, y, m, rows)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                images += len(x)
            return images / (time.perf_counter() - start)

        def with_engine() -> float:
            return engine._train_epoch(0, loader(), None)["images_per_s"]

        plain()  # warm-up: first-touch allocations and thread pools
        rates = {"plain": [], "engine": []}
        for _ in range(2):  # interleaved, so drift on a shared machine hits both
            rates["plain"].append(plain())
            rates["engine"].append(with_engine())
        p, e = max(rates["plain"]), max(rates["engine"])
        print(f"{args.backbone}, batches of 64 images ({args.batches} per run, best of 2):")
        print(f"  plain PyTorch loop  {p:7.1f} images/s")
        print(f"  vitool engine       {e:7.1f} images/s")
        print(f"  engine overhead     {100 * (p - e) / p:6.1f} %   (target <= 10 %)")
        extract_throughput(engine, Path(tmp))


def extract_throughput(engine: Engine, tmp: Path) -> None:
    """Images/s of feature extraction reading JPEG files against reading the HDF5 image cache."""
    from vitool.data.cache import ImageCache, build_cache
    from vitool.models.features import extract

    samples, model = engine.train_samples, engine.model
    build_cache(samples, engine.root, model.config.height, model.config.width, tmp / "cache.h5")
    cache = ImageCache(tmp / "cache.h5", model.config.height, model.config.width)
    rates = {}
    for name, source in (("image files", None), ("image cache", cache), ("image files ", None)):
        start = time.perf_counter()
        extract(model, samples, engine.root, torch.device("cpu"), batch_size=128, cache=source)
        rates[name] = len(samples) / (time.perf_counter() - start)
    files = max(rates["image files"], rates["image files "])  # before and after, against drift
    print(f"extract-features, {len(samples)} images at {model.config.height}x{model.config.width}, CPU:")
    print(f"  from image files    {files:7.1f} images/s")
    print(f"  from the image cache {rates['image cache']:6.1f} images/s  ({rates['image cache'] / files:.2f}x)")


if __name__ == "__main__":
    main()

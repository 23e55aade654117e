"""A SYSU-MM01-size rehearsal on this machine: every per-epoch stage of each recipe at full size.

1. ``vitool synth`` at SYSU-MM01's size (395 training + 96 test identities, 17 images per identity and
   camera, some cameras missing per identity as in SYSU: 22,134 visible and 11,713 infrared training
   images; SYSU has 22,258 and 11,909).
2. Each recipe (configs/agw.toml, otla.toml, pclhd.toml, mult.toml, experts.toml: ResNet-50 at 288x144)
   runs one epoch through the real ``Engine`` in a process of its own (its peak RSS is that process's):
   the method's per-epoch labels for all training images (clustering, association, memories; the
   two-stage methods start in their own stage), ``--steps`` training iterations with the recipe's batch
   and loss, the held-out validation, a checkpoint and the final SYSU test evaluation (all and indoor,
   10 trials). Extraction of 34,000 images at 288x144 takes hours on 2 CPU cores, so these stages are
   fed identity-structured 2048-d features of the right shape instead of the network's (what each
   method reads: ``features``, and ``probs`` for OTLA); extraction is measured on its own (3.).
3. Extraction throughput of ResNet-50 at 288x144 (eval mode) on 256 training images.

Prints a markdown table and writes a JSON report. No pretrained weights are read (``pretrained = none``):
the speed and memory of a step do not depend on them.

Usage:  python benchmarks/scale.py [--data data/sysu-full] [--steps 2] [--only agw,otla,pclhd,mult,experts]
        python benchmarks/scale.py --recipe mult --data DIR --steps 2   (one recipe; what the parent runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECIPES = ("agw", "otla", "pclhd", "mult", "experts")
OWN_STAGE = {"pclhd": {"dcl_epochs": 0}, "mult": {"dcl_epochs": 0}, "experts": {"experts_stage1_epochs": 0}}
# OTLA's released recipe draws epoch 0's infrared labels at random (ot_init = "random"): its Sinkhorn
# runs from epoch 1, so that is the epoch measured (epochs = 2, starting at 1)
FROM_EPOCH_1 = ("otla",)
# PCLHD's 256-image and MULT's 288-image batches need about 4x the ~7 GiB of activations a 64-image
# ResNet-50 step takes on the CPU (on a GPU they live in GPU memory): here they train 4 x 8 per modality
SMALL_BATCH = {"pclhd": {"ids_per_batch": 4, "images_per_id": 8}, "mult": {"ids_per_batch": 4, "images_per_id": 8}}


def fake_features(samples, dim: int = 2048, classes: int = 0):
    """Unit features around one centre per identity (plus a modality offset), as a FeatureSet; with
    ``classes``, softmax probabilities over that many classes too (OTLA's classifier output)."""
    from vitool.io import FeatureSet

    pid = np.array([s.pid for s in samples])
    modality = np.array([s.modality for s in samples], dtype=np.uint8)
    rng = np.random.default_rng(len(samples))
    centres = np.random.default_rng(0).normal(size=(int(pid.max()) + 1, dim)).astype(np.float32)
    shift = 0.3 * np.random.default_rng(1).normal(size=dim).astype(np.float32)
    feats = centres[pid] + 0.8 * rng.standard_normal((len(pid), dim), dtype=np.float32) + shift * modality[:, None]
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    probs = None
    if classes:
        logits = rng.normal(size=(len(pid), classes)) * 3.0
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    paths = np.array([s.path for s in samples], dtype=object)
    cam = np.array([s.cam for s in samples])
    return FeatureSet(feats, paths, pid, cam, modality, probs=probs, attrs={"dataset": "manifest"})


def run_recipe(name: str, data: Path, steps: int, val_ids: int, full_batch: bool = False) -> dict:
    """One epoch of ``name`` at full size in this process; seconds per stage."""
    import torch

    from vitool.engine.config import load_config
    from vitool.engine.trainer import Engine

    overrides = dict(
        root=str(data), epochs=2 if name in FROM_EPOCH_1 else 1, batches_per_epoch=steps, device="cpu", workers=2,
        pretrained="none",
        val_ids=val_ids, eval_every=1, **OWN_STAGE.get(name, {}), **({} if full_batch else SMALL_BATCH.get(name, {})),
    )  # fmt: skip
    timings: dict[str, float] = {}
    fake = {"seconds": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        engine = Engine(load_config(REPO / "configs" / f"{name}.toml", overrides), Path(tmp) / "run", lambda _: None)
        timings["build (split, method, ResNet-50)"] = time.perf_counter() - start
        engine.start_epoch = engine.config.epochs - 1
        classes = engine.method.num_classes() if name == "otla" else 0

        def extract(samples, model=None, attrs=None):
            t = time.perf_counter()
            fs = fake_features(samples, classes=classes)
            fake["seconds"] += time.perf_counter() - t
            return fs

        engine.context.extract = extract
        engine.features = lambda samples, attrs=None, model=None: extract(samples)

        def timed(label, fn):
            def wrapper(*args, **kwargs):
                before, t = fake["seconds"], time.perf_counter()
                out = fn(*args, **kwargs)
                timings[label] = time.perf_counter() - t - (fake["seconds"] - before)  # without the fake features
                return out

            return wrapper

        engine.method.epoch_labels = timed("epoch labels (cluster, associate, memories)", engine.method.epoch_labels)
        engine._validate = timed(f"held-out validation ({val_ids} ids)", engine._validate)
        engine.test = timed("test evaluation (all + indoor, 10 trials)", engine.test)
        t = time.perf_counter()
        engine.run()
        total = time.perf_counter() - t - fake["seconds"]
        record = json.loads((Path(tmp) / "run" / "log.jsonl").read_text().splitlines()[0])
    timings[f"{steps} training steps"] = record["seconds"]
    accounted = sum(v for k, v in timings.items() if not k.startswith("build"))
    timings["checkpoint, curves, rest"] = max(total - accounted, 0.0)
    batch = record["images_per_s"] * record["seconds"] / max(steps, 1)
    return {
        "recipe": name,
        "method": engine.config.method,
        "train_images": len(engine.train_samples),
        "seconds": {k: round(v, 2) for k, v in timings.items()},
        "train_images_per_s": record["images_per_s"],
        "images_per_step": round(batch),
        "threads": torch.get_num_threads(),
    }


def extraction_rate(data: Path) -> dict:
    import torch

    from vitool.data.datasets import image_root, load_split
    from vitool.models.features import extract
    from vitool.models.network import ModelConfig, VIReIDNet

    model = VIReIDNet(ModelConfig.cpu_default("resnet50"), pretrained="none")
    samples = load_split("sysu", str(data), "train", 1)[:288]
    root = image_root("sysu", str(data))
    extract(model, samples[:32], root, torch.device("cpu"), batch_size=32)  # warm-up
    start = time.perf_counter()
    extract(model, samples[32:], root, torch.device("cpu"), batch_size=64)
    return {"images_per_s": round(256 / (time.perf_counter() - start), 2)}


def child(args: list[str]) -> tuple[dict, float]:
    """Run this script with ``args`` in a new process: its JSON output and its peak RSS in GiB."""
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed (status {status})")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 2**20  # KiB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "sysu-full")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--only", default=",".join(RECIPES))
    parser.add_argument("--full-batch", action="store_true", help="PCLHD's and MULT's own batch (~30 GiB here)")
    parser.add_argument("--val-ids", type=int, default=39, help="held-out training identities (10%% of SYSU's)")
    parser.add_argument("--recipe", help="run one recipe in this process and print its JSON (internal)")
    parser.add_argument("--extraction", action="store_true", help="measure extraction only (internal)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args()
    if args.recipe:
        print(json.dumps(run_recipe(args.recipe, args.data, args.steps, args.val_ids, args.full_batch)))
        return
    if args.extraction:
        print(json.dumps(extraction_rate(args.data)))
        return
    report: dict = {"data": str(args.data)}
    if not args.data.exists():
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "vitool", "synth", str(args.data), "--train-ids", "395", "--test-ids", "96"]
        subprocess.run([*cmd, "--images", "17", "--seed", "0"], check=True, stdout=subprocess.DEVNULL)
        report["synth_seconds"] = round(time.perf_counter() - start, 1)
    rate, rss = child(["--extraction", "--data", str(args.data)])
    report["extraction"] = {**rate, "peak_rss_gib": round(rss, 2)}
    print(f"extraction, ResNet-50 288x144: {rate['images_per_s']} images/s ({rss:.2f} GiB)", flush=True)
    report["recipes"] = []
    for name in args.only.split(","):
        result, rss = child(
            ["--recipe", name, "--data", str(args.data), "--steps", str(args.steps), "--val-ids", str(args.val_ids)]
            + (["--full-batch"] if args.full_batch else [])
        )
        result["peak_rss_gib"] = round(rss, 2)
        report["recipes"].append(result)
        print(json.dumps(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    print("\n| recipe | stage | seconds |\n|---|---|---|")
    for r in report["recipes"]:
        for stage, seconds in r["seconds"].items():
            print(f"| {r['recipe']} ({r['method']}) | {stage} | {seconds} |")
        print(f"| {r['recipe']} | peak RSS | {r['peak_rss_gib']} GiB |")
        print(f"| {r['recipe']} | training | {r['train_images_per_s']} images/s, {r['images_per_step']} per step |")


if __name__ == "__main__":
    main()

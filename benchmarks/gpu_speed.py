"""Training and extraction throughput on a GPU: ResNet-50 (AGW, 288x144) through the vitool engine, with
AMP off, fp16 and bf16, and extract-features throughput; with ``--stages``, instead, the seconds of the
per-epoch stages at SYSU-MM01 size on the device (clustering of the visible modality, MULT's label
transfer), on association_speed.py's identity-structured features. One JSON object on stdout
(gpu_check.sh).

Each setting trains on the same synthetic SYSU-layout batches (8 ids x 4 images per modality = 64 images);
the first ``--warmup`` steps are not timed (cuDNN autotuning, allocations), the clock waits for the GPU.

With ``--engine``, the real training Engine instead: two epochs of every method (the second in its own
stage) at ResNet-50 288x144 with AMP, channels_last off and on; per epoch the images/s, the share of the
epoch the loop waited for batches, the seconds of the per-epoch labels stage, and the peak GPU memory.

Usage:  python benchmarks/gpu_speed.py [--steps 30] [--warmup 5] [--device cuda]
        python benchmarks/gpu_speed.py --engine [--steps 10] [--methods supervised,pclhd]
        python benchmarks/gpu_speed.py --device cpu --backbone mobilenet_v2 --steps 2 --warmup 1  (a smoke run)
        python benchmarks/gpu_speed.py --stages [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from _engine_batches import batch_loader, supervised_engine

from vitool.data.synth import SynthConfig, generate


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(root: Path, run: Path, amp: str, args: argparse.Namespace) -> dict:
    device, steps, warmup = args.device, args.steps, args.warmup
    engine = supervised_engine(root, run, args.backbone, warmup + steps, device=device, amp=amp, workers=4)
    batches = list(batch_loader(engine, warmup + steps))
    model = engine.train_model
    model.train()
    times = []
    for i, (x, m, y, rows) in enumerate(batches):
        x, m, y = x.to(engine.device), m.to(engine.device), y.to(engine.device)
        sync(engine.device)
        start = time.perf_counter()
        with torch.autocast(
            engine.device.type, dtype=engine.amp_dtype or torch.float32, enabled=engine.amp_dtype is not None
        ):
            out = model(x, m)
        loss, _ = engine.method.loss(out, y, m, rows)
        engine.optimizer.zero_grad(set_to_none=True)
        engine.scaler.scale(loss).backward()
        engine.scaler.step(engine.optimizer)
        engine.scaler.update()
        sync(engine.device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(engine.device) / 2**30 if engine.device.type == "cuda" else None
    return {
        "images_per_s": round(64 * len(times) / sum(times), 1),
        "steps": len(times),
        "peak_gib": peak,
        "loss_finite": bool(torch.isfinite(loss)),
    }


def extract_rate(root: Path, device: str, backbone: str) -> dict:
    from vitool.data.datasets import load_split
    from vitool.devices import resolve_device
    from vitool.models.features import extract
    from vitool.models.network import ModelConfig, VIReIDNet

    dev = resolve_device(device)
    model = VIReIDNet(ModelConfig.cpu_default(backbone), pretrained="none").to(dev)
    samples = load_split("sysu", str(root), "test", 1)
    extract(model, samples[:256], root, dev, batch_size=128)  # warm-up
    sync(dev)
    start = time.perf_counter()
    extract(model, samples, root, dev, batch_size=128)
    sync(dev)
    return {"images_per_s": round(len(samples) / (time.perf_counter() - start), 1), "images": len(samples)}


def stage_seconds(device: str, scale: float) -> dict:
    """Clustering and MULT's label transfer at ``scale`` x SYSU-MM01's training size on ``device``."""
    import numpy as np
    from association_speed import _two_modalities

    from vitool.assign import assign
    from vitool.cluster import ClusterConfig, dbscan_labels
    from vitool.evaluation.diagnostics import label_diagnostics

    feats, pid, modality = _two_modalities(scale)
    visible = feats[modality == 0]
    start = time.perf_counter()
    clusters = dbscan_labels(visible, ClusterConfig(device=device))
    cluster_s = time.perf_counter() - start
    intra = np.where(modality == 0, pid, pid + 1000)  # per-modality clusters = identities, no link
    start = time.perf_counter()
    result = assign("mult", feats, modality, intra, device=device)
    mult_s = time.perf_counter() - start
    return {
        "samples": {"visible": len(visible), "infrared": int((modality == 1).sum())},
        "cluster_visible_s": round(cluster_s, 2),
        "clusters": int(clusters.max()) + 1,
        "mult_s": round(mult_s, 2),
        "mult_cross_modal_accuracy": round(label_diagnostics(pid, modality, result.label)["cross_modal_accuracy"], 4),
        "mult_sinkhorn_iterations": result.attrs["sinkhorn_iterations"],
    }


ENGINE_METHODS = ("supervised", "otla", "experts", "dcl", "pclhd", "mult")
# two-stage methods switch at the second epoch; an untrained network's features give DBSCAN one cluster, so
# the clusters and their association are the true ones (--stages times DBSCAN and MULT at SYSU size)
ENGINE_KEYS = dict(dcl_epochs=1, experts_stage1_epochs=1, cluster_oracle=True, association="oracle", val_ids=0)


def engine_epochs(root: Path, args: argparse.Namespace) -> dict:
    """The real Engine, two epochs per method (the second in its own stage) at ResNet-50 288x144 with AMP,
    channels_last off and on: each epoch's images/s, the share of it spent waiting for batches, the seconds
    of its per-epoch labels stage, and the peak GPU memory."""
    from vitool.engine.config import load_config
    from vitool.engine.trainer import Engine
    from vitool.methods.registry import read_by

    out: dict[str, dict] = {}
    for method in args.methods.split(","):
        own = read_by(method, ENGINE_KEYS)
        for channels_last in (False, True):
            config = load_config(None, {
                "dataset": "sysu", "root": str(root), "method": method, "backbone": args.backbone,
                "pretrained": "none", "epochs": 2, "batches_per_epoch": args.steps, "optimizer": "adam",
                "lr": 3.5e-4, "warmup_epochs": 0, "device": args.device, "amp": "auto",
                "channels_last": channels_last, **own,
            })  # fmt: skip
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with tempfile.TemporaryDirectory() as run:
                Engine(config, Path(run) / "run", log=lambda _: None).run()
                log = [json.loads(line) for line in (Path(run) / "run" / "log.jsonl").read_text().splitlines()]
            peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
            out[f"{method}{'_channels_last' if channels_last else ''}"] = {
                "images_per_s": [r["images_per_s"] for r in log],
                "data_wait_share": [r["data_wait_share"] for r in log],
                "labels_seconds": [r["labels_seconds"] for r in log],
                "epoch_seconds": [r["seconds"] for r in log],
                "loss_finite": all(r["loss"] == r["loss"] for r in log),
                "peak_gib": None if peak is None else round(peak, 2),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backbone", default="resnet50", help="resnet50 runs at 288x144, the others at 128x64")
    parser.add_argument("--stages", action="store_true", help="time clustering and MULT's transfer instead")
    parser.add_argument("--engine", action="store_true", help="time the Engine's epochs of every method instead")
    parser.add_argument("--methods", default=",".join(ENGINE_METHODS), help="--engine: the methods, comma-separated")
    parser.add_argument("--scale", type=float, default=1.0, help="--stages: fraction of SYSU-MM01's size")
    args = parser.parse_args()
    if args.stages:
        print(json.dumps({"device": args.device, **stage_seconds(args.device, args.scale)}))
        return
    torch.backends.cudnn.benchmark = True
    report: dict = {"torch": torch.__version__, "device": args.device, "backbone": args.backbone}
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "sysu"
        generate(root, SynthConfig("sysu", train_ids=24, test_ids=24, images=3, seed=0))
        if args.engine:
            report["engine"] = engine_epochs(root, args)
            print(json.dumps(report))
            return
        amps = ("none", "fp16", "bf16") if args.device == "cuda" else ("none",)  # half precision on a CPU: emulated
        report["train"] = {amp: train_rate(root, Path(tmp) / f"run-{amp}", amp, args) for amp in amps}
        report["extract"] = extract_rate(root, args.device, args.backbone)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

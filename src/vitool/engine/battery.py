"""``check_method(name)``: the battery every registered method passes, vitool's own and a plugin's.

It drives the method through the real engine on a dozen tiny generated pictures per modality (a CSV
manifest in a temporary folder) and a MobileNetV2 at 32x16 without pretrained weights, in seconds, and
checks what the engine relies on: labels of the right shape and dtype, a finite loss whose gradient
reaches the backbone, a report of plain values, a state a checkpoint holds and a new run takes, and a run resumed
after its first epoch that ends bit-identical to one that was not interrupted. A plugin's tests call it
(``from vitool import check_method``); vitool's tests run it for every registered method.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitool.engine.config import load_config
from vitool.engine.trainer import Engine
from vitool.errors import MethodCheckError, VitoolError
from vitool.methods.contract import EpochLabels, EpochReport, RunPlan
from vitool.methods.registry import read_by

TINY = dict(
    dataset="manifest",
    backbone="mobilenet_v2",
    pretrained="none",
    height=32,
    width=16,
    ids_per_batch=2,
    images_per_id=2,
    batches_per_epoch=2,
    optimizer="adam",
    lr=3.5e-3,
    weight_decay=0.0,  # a backbone weight moves only if the loss's gradient reaches it
    warmup_epochs=1,
    milestones=[],
    val_ids=0,
    seed=5,
    workers=0,
    device="cpu",
)
# vitool's own methods at this size (each key goes only to the methods that read it): the second stage
# from the second epoch, and the true identities as clusters and as OTLA's infrared labels, since an
# untrained network's features of a dozen pictures neither cluster nor transport to more than one
# identity (clustering and Sinkhorn have tests of their own; the association still runs)
SMALL_OPTIONS = dict(cluster_oracle=True, cluster_min_samples=2, ot_oracle=True, dcl_epochs=1, experts_stage1_epochs=1)
IDENTITIES, TEST_IDENTITIES, PICTURES = 6, 3, 2  # per modality and identity


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise MethodCheckError(what)


def tiny_manifest(folder: Path) -> Path:
    """A CSV manifest of small pictures: each identity one colour with noise, a little darker in infrared."""
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = ["path,pid,cam,modality,split"]
    for pid in range(IDENTITIES + TEST_IDENTITIES):
        colour = rng.integers(30, 226, size=3)
        split = "train" if pid < IDENTITIES else "test"
        for modality, cam in (("visible", 1), ("infrared", 3)):
            for k in range(PICTURES):
                pixels = colour + rng.normal(0, 12, size=(32, 16, 3))
                if modality == "infrared":
                    pixels = np.repeat(pixels.mean(axis=2, keepdims=True) * 0.8, 3, axis=2)
                path = f"{modality}/{pid:03d}_{k}.png"
                (folder / modality).mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / path)
                lines.append(f"{path},{pid},{cam},{modality},{split}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def _same(a: Any, b: Any, where: str = "state") -> None:
    """Bit-identical nested states (tensors, arrays, numbers, containers)."""
    if isinstance(a, dict):
        _expect(isinstance(b, dict) and set(a) == set(b), f"{where}: the keys differ")
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        _expect(isinstance(b, list | tuple) and len(a) == len(b), f"{where}: the lengths differ")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        _expect(isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b), f"{where} differs")
    elif isinstance(a, np.ndarray):
        _expect(isinstance(b, np.ndarray) and np.array_equal(a, b, equal_nan=True), f"{where} differs")
    else:
        _expect(a == b or (a != a and b != b), f"{where}: {a!r} != {b!r}")


def check_method(name: str, options: dict[str, Any] | None = None) -> list[str]:
    """Run the battery on the registered method ``name`` (``options``: its own keys, if the defaults do
    not fit a dozen pictures); raise :class:`MethodCheckError` naming the first check that fails, else
    return the checks passed."""
    passed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="vitool-check-") as tmp:
        work = Path(tmp)
        values = {**TINY, **read_by(name, SMALL_OPTIONS), **(options or {}), "method": name}
        values["root"] = str(tiny_manifest(work / "data"))

        def engine(run: str, epochs: int) -> Engine:
            return Engine(load_config(None, {**values, "epochs": epochs}), work / run, log=lambda _: None)

        probe = engine("probe", 2)
        config = probe.config
        probe.method.plan(RunPlan(config.epochs, config.batches_per_epoch, tuple(probe.stages)))  # as run() does
        plan = probe.method.epoch_labels(probe.context, 0)
        rows = len(probe.train_samples)
        _expect(isinstance(plan, EpochLabels), f"epoch_labels returned {type(plan).__name__}, not EpochLabels")
        for field in ("labels", "second"):
            labels = getattr(plan, field)
            if labels is None and field == "second":
                continue
            labels = np.asarray(labels)
            _expect(labels.shape == (rows,), f"EpochLabels.{field}: shape {labels.shape}, not one per row ({rows},)")
            _expect(labels.dtype.kind in "iu", f"EpochLabels.{field}: dtype {labels.dtype}, not an integer type")
            _expect(bool((labels >= -1).all() and (labels >= 0).any()), f"EpochLabels.{field}: labels >= 0, or -1")
        passed.append("labels: one integer per training row")

        report = probe.method.report()
        plain = (bool, int, float, str, type(None))
        _expect(isinstance(report, EpochReport), f"report() returned {type(report).__name__}, not EpochReport")
        names: list[str] = []
        for group in ("quality", "counts", "settings"):
            for key, value in getattr(report, group).items():
                names.append(key)
                if group == "settings":
                    ok, want = isinstance(value, (*plain, list, dict)), "a plain value"
                else:
                    ok, want = isinstance(value, int | float) and not isinstance(value, bool), "a number"
                _expect(ok, f"report().{group}[{key!r}] = {type(value).__name__}, not {want}")
        taken = {"epoch", "lr", "loss", "val", "seconds", "images_per_s", "quality_keys", "count_keys"}
        clash = sorted({n for n in names if names.count(n) > 1} | (set(names) & taken))
        if clash:
            raise MethodCheckError(f"report() names {clash[0]!r} twice, or as a field the engine logs itself")
        try:
            json.dumps(report.flat())
        except (TypeError, ValueError) as exc:
            raise MethodCheckError(f"report() cannot be written to log.jsonl: {exc}") from None
        passed.append("report: plain values")

        straight = engine("straight", 2)
        heads = {
            id(p) for m in (straight.model.bnneck, straight.model.classifier) if m is not None for p in m.parameters()
        }
        backbone = {n: p.detach().clone() for n, p in straight.model.named_parameters() if id(p) not in heads}
        try:
            straight.run()
        except VitoolError as exc:  # the engine's own refusal, e.g. a loss that became NaN
            raise MethodCheckError(f"two epochs of training failed: {exc.line()}") from None
        log = [json.loads(line) for line in (work / "straight" / "log.jsonl").read_text().splitlines()]
        _expect(all(math.isfinite(r["loss"]) for r in log), "the loss is not finite")
        moved = [n for n, p in straight.model.named_parameters() if n in backbone and not torch.equal(p, backbone[n])]
        _expect(bool(moved), "the loss's gradient never reaches the backbone (no backbone weight moved)")
        passed.append("a finite loss whose gradient reaches the backbone")

        try:
            saved = torch.load(work / "straight" / "last.pt", weights_only=True)
        except Exception as exc:  # pickle's refusal of a non-plain object
            raise MethodCheckError(f"state_dict() holds what weights_only=True refuses: {exc}".split("\n")[0]) from None
        engine("fresh", 2).method.load_state_dict(saved["method"])  # a new run of the method takes it
        passed.append("state: a checkpoint loads with weights_only and load_state_dict takes it")

        engine("resumed", 1).run()
        resumed = engine("resumed", 2)
        resumed.resume(work / "resumed" / "last.pt")
        resumed.run()
        after = torch.load(work / "resumed" / "last.pt", weights_only=True)
        _same(saved["model_state"], after["model_state"], "model weights after a resume")
        _same(saved["method"], after["method"], "method state after a resume")
        passed.append("resume: one epoch, then --resume, equals two epochs")
    return passed

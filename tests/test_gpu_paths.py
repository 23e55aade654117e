"""What the CUDA, AMP and distributed paths need, tested on the CPU: resuming across devices and scaler
states, --resume honouring where it runs, GeM in float32 under any autocast, memory updates vectorised
exactly, k-means without faiss, and under two gloo processes per-rank augmentation seeds with shared
labels, equal expert prototypes and sharded extraction equal to one process's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitool.engine.trainer import Engine
from vitool.errors import VitoolError
from vitool.methods.memory import ClusterMemory
from vitool.models.network import GeM

from .conftest import run_cli, tiny

REPO = Path(__file__).resolve().parents[1]


def test_a_run_saved_without_a_scaler_resumes_into_an_enabled_one(tmp_path, synth_root):
    Engine(tiny(synth_root["sysu"], epochs=1, val_ids=0), tmp_path / "run", log=lambda _: None).run()
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["scaler"] == {}  # a CPU run: no fp16 scaling
    lines = []
    engine = Engine(tiny(synth_root["sysu"], epochs=2, val_ids=0), tmp_path / "run", log=lines.append)
    engine.scaler = torch.amp.GradScaler("cpu", enabled=True)  # as a CUDA fp16 run builds it
    engine.resume(tmp_path / "run" / "last.pt")  # vitool 0.1: "does not fit this run's model (RuntimeError)"
    assert engine.start_epoch == 1 and engine.scaler.get_scale() == 65536.0  # a fresh scale
    assert any(line.startswith("resuming at epoch 2/2 on cpu") for line in lines)
    # and the reverse: a scaler's state into a run without scaling is left out
    torch.save({**saved, "scaler": torch.amp.GradScaler("cpu", enabled=True).state_dict()}, tmp_path / "s.pt")
    Engine(tiny(synth_root["sysu"], epochs=2, val_ids=0), tmp_path / "run", log=lambda _: None).resume(
        tmp_path / "s.pt"
    )


def test_resume_honours_where_it_runs_now(tmp_path, synth_root):
    common = ["--backbone", "mobilenet_v2", "--pretrained", "none", "--set", "height=64", "--set", "width=32"]
    common += ["--batches-per-epoch", "1", "--val-ids", "0", "--set", "ids_per_batch=2", "--set", "images_per_id=2"]
    run = tmp_path / "run"
    res = run_cli("train", "--root", synth_root["sysu"], "--epochs", "1", "--workers", "0", *common, "-o", run)
    assert res.returncode == 0, res.stderr
    res = run_cli("train", "--resume", run, "--epochs", "2", "--workers", "1", "--amp", "bf16")
    assert res.returncode == 0, res.stderr
    assert "resuming at epoch 2/2 on cpu (amp torch.bfloat16, workers 1)" in res.stderr
    assert "workers 0 -> 1" in res.stderr and "amp 'auto' -> 'bf16'" in res.stderr
    config = (run / "config.toml").read_text()
    assert 'amp = "bf16"' in config and "workers = 1" in config and "epochs = 2" in config
    res = run_cli("train", "--resume", run, "--epochs", "3", "--device", "cuda")  # honoured: no GPU here
    if not torch.cuda.is_available():
        assert res.returncode == 1 and "--device cuda but no CUDA device is visible" in res.stderr


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gem_runs_in_float32_under_autocast(dtype):
    x = torch.full((2, 8, 4, 4), 1e-3)  # cubes of 1e-9: below float16's smallest normal
    x[1] = 2.0
    for gem in (GeM(3.0), GeM(3.0, clamp=1e-6, learned=True)):
        with torch.autocast("cpu", dtype=dtype):
            out = gem(x.to(dtype))
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        torch.testing.assert_close(out[0], torch.full((8,), 1e-3), rtol=1e-3, atol=0)
        torch.testing.assert_close(out[1], torch.full((8,), 2.0), rtol=1e-3, atol=0)


def _per_sample(memory: ClusterMemory, feats, labels) -> None:
    """Cluster-Contrast's loop, one sample at a time (vitool 0.1's update)."""
    for x, y in zip(feats.float(), labels.tolist(), strict=True):
        if y >= 0:
            rows = torch.tensor([y])
            memory.prototypes[rows] = F.normalize(0.1 * memory.prototypes[rows] + 0.9 * x[None], dim=1)


def _hardest_per_cluster(memory: ClusterMemory, feats, labels, centroids) -> None:
    for y in torch.unique(labels[labels >= 0]).tolist():
        members = feats[labels == y]
        hardest = members[torch.argmin(members @ centroids.prototypes[y])]
        rows = torch.tensor([y])
        memory.prototypes[rows] = F.normalize(0.1 * memory.prototypes[rows] + 0.9 * hardest[None], dim=1)


def test_vectorised_memory_updates_equal_the_per_sample_ones_bit_for_bit():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        prototypes = torch.randn(40, 256, generator=g)
        feats = F.normalize(torch.randn(256, 256, generator=g), dim=1)
        labels = torch.randint(-1, 40, (256,), generator=g)  # up to ~15 samples a cluster, some -1
        loop, rounds = ClusterMemory(prototypes.clone()), ClusterMemory(prototypes.clone())
        _per_sample(loop, feats, labels)
        rounds.update_sequential(feats, labels)
        assert torch.equal(loop.prototypes, rounds.prototypes)
        centroids = ClusterMemory(torch.randn(40, 256, generator=g))
        loop, vector = ClusterMemory(prototypes.clone()), ClusterMemory(prototypes.clone())
        _hardest_per_cluster(loop, feats, labels, centroids)
        vector.update_hardest(feats, labels, centroids)
        assert torch.equal(loop.prototypes, vector.prototypes)
    empty = ClusterMemory(prototypes.clone())
    empty.update_sequential(feats[:2], torch.tensor([-1, -1]))
    empty.update_hardest(feats[:2], torch.tensor([-1, -1]), centroids)
    assert torch.equal(empty.prototypes, F.normalize(prototypes, dim=1))


def test_kmeans_runs_without_faiss_and_the_gpu_path_names_what_is_missing(monkeypatch):
    import vitool.cluster as cluster

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 4
    x = np.concatenate([c + rng.normal(size=(25, 16)) for c in centres]).astype(np.float32)
    labels = cluster.kmeans_labels(x, cluster.ClusterConfig(method="kmeans", k=4, device="cpu"))
    assert sorted(np.bincount(labels)) == [25, 25, 25, 25]  # the four groups, by scikit-learn
    with pytest.raises(VitoolError, match="k-means on the GPU needs faiss built with GPU support") as info:
        cluster._faiss_has_gpu(required=True)
    assert "\n" not in str(info.value)
    assert cluster._faiss_has_gpu(required=False) is False  # auto: the CPU path


PROBE = """
import json, os, sys, torch
sys.path.insert(0, {repo!r})
from tests.conftest import tiny
from vitool.engine.trainer import Engine

rank = int(os.environ["RANK"])
config = tiny({root!r}, method="experts", epochs=2, experts_stage1_epochs=1, val_ids=0, device="cpu")
engine = Engine(config, {run!r}, log=lambda _: None)
seen = []
train_epoch = engine._train_epoch
def spy(epoch, loader, progress):
    seen.append({{"torch_seed": torch.initial_seed(), "loader_seed": loader.generator.initial_seed(),
                  "labels": [int(v) for v in loader.dataset.labels]}})
    return train_epoch(epoch, loader, progress)
engine._train_epoch = spy
engine.run()
sharded = engine.features(engine.train_samples, shard=True)
whole = engine.features(engine.train_samples, shard=False)
out = {{"epochs": seen, "proto_v": engine.method.net.proto_v.tolist(), "proto_r": engine.method.net.proto_r.tolist(),
        "sharded": sharded.features.tolist(), "whole": whole.features.tolist(), "paths": list(sharded.path)}}
with open(os.path.join({out!r}, f"rank{{rank}}.json"), "w") as handle:
    json.dump(out, handle)
"""


def test_two_gloo_processes_draw_their_own_augmentation_share_labels_prototypes_and_extraction(tmp_path, synth_root):
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(repo=str(REPO), root=str(synth_root["sysu"]), run=str(tmp_path / "run"),
                                   out=str(tmp_path)))  # fmt: skip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for e0, e1 in zip(r0["epochs"], r1["epochs"], strict=True):
        assert e0["labels"] == e1["labels"]  # the same labels (process 0's) everywhere
        assert e0["torch_seed"] != e1["torch_seed"] and e0["loader_seed"] != e1["loader_seed"]  # own draws
    np.testing.assert_array_equal(r0["proto_v"], r1["proto_v"])  # prototypes moved by the whole batch
    np.testing.assert_array_equal(r0["proto_r"], r1["proto_r"])
    assert r0["paths"] == r1["paths"]
    np.testing.assert_array_equal(r0["sharded"], r1["sharded"])  # one gathered result for both
    np.testing.assert_allclose(r0["sharded"], r0["whole"], rtol=1e-5, atol=1e-6)  # = one process's extraction

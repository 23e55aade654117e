"""The CUDA paths, run where a GPU is visible (`pytest -m cuda`, benchmarks/gpu_check.sh); each test skips
cleanly on a machine without one."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

# deterministic cuBLAS for the exact-resume test; must be set before the first CUDA call
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

from vitool.data.datasets import load_split  # noqa: E402
from vitool.engine.trainer import Engine  # noqa: E402
from vitool.evaluation.evaluate import evaluate_features  # noqa: E402
from vitool.evaluation.protocols import ProtocolSpec  # noqa: E402
from vitool.methods.registry import read_by  # noqa: E402

from .conftest import (
    random_featureset,  # noqa: E402
    tiny,  # noqa: E402
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible"),
]


@pytest.fixture
def deterministic():
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    yield
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_amp_training_steps_and_exact_resume(tmp_path, synth_root, amp, deterministic):
    kw = {"method": "otla", "device": "cuda", "amp": amp, "pretrained": "none"}
    straight = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "a", log=lambda _: None)
    assert straight.amp_dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[amp]
    assert straight.scaler.is_enabled() == (amp == "fp16")
    results_a = straight.run()
    first = Engine(tiny(synth_root["sysu"], **kw, epochs=1), tmp_path / "b", log=lambda _: None)
    first.run()
    resumed = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "b", log=lambda _: None)
    resumed.resume(tmp_path / "b" / "last.pt")
    results_b = resumed.run()
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key in a["model_state"]:
        torch.testing.assert_close(a["model_state"][key], b["model_state"][key], rtol=0, atol=0)
    assert a["scaler"] == b["scaler"] and results_a == results_b
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log)


def test_extract_features_on_cuda_matches_cpu(synth_root):
    from vitool.models.features import extract
    from vitool.models.network import ModelConfig, VIReIDNet

    torch.manual_seed(0)
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none")
    samples = load_split("sysu", str(synth_root["sysu"]), "test", 1)
    cpu = extract(model, samples, synth_root["sysu"], torch.device("cpu"), batch_size=16)
    gpu = extract(model.cuda(), samples, synth_root["sysu"], torch.device("cuda"), batch_size=16)
    for key in ("features", "features_pre_bn"):
        a, b = cpu[key], gpu[key]
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.999, key  # TF32 convolutions on the GPU differ in the last digits


def test_evaluate_on_the_gpu_equals_the_cpu():
    fs = random_featureset(n_vis=300, n_ir=200, dim=64, n_ids=40, seed=3)
    spec = ProtocolSpec("sysu", trials=3)
    cpu = evaluate_features(fs, spec, device="cpu")
    gpu = evaluate_features(fs, spec, device="cuda")
    for key in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP"):
        assert gpu[key] == pytest.approx(cpu[key], abs=1e-6), key


def test_knn_on_the_gpu_finds_the_cpu_neighbours():
    from vitool.cluster import knn
    from vitool.modality import l2_normalise

    x = l2_normalise(np.random.default_rng(0).normal(size=(5000, 128)).astype(np.float32))
    gpu_rank, gpu_sim = knn(x, 20, "cuda", return_similarity=True)
    cpu_rank, cpu_sim = knn(x, 20, "cpu", return_similarity=True)
    np.testing.assert_array_equal(gpu_rank[:, :10], cpu_rank[:, :10])
    np.testing.assert_allclose(gpu_sim, cpu_sim, atol=1e-5)


def test_mult_on_the_gpu_gives_the_cpu_labels():
    from vitool.assign import assign
    from vitool.cluster import ClusterConfig, cluster_labels

    from .conftest import identity_features

    feats, _, modality = identity_features(ids=20, noise=0.7, gap=1.0, seed=3)
    labels = cluster_labels(feats, modality, ClusterConfig(eps=0.7, device="cpu"))
    gpu = assign("mult", feats, modality, labels, device="cuda")
    cpu = assign("mult", feats, modality, labels, device="cpu")
    np.testing.assert_array_equal(gpu.label, cpu.label)
    np.testing.assert_array_equal(gpu.intra_label, cpu.intra_label)
    np.testing.assert_allclose(gpu.soft, cpu.soft, atol=1e-4)
    assert gpu.attrs == cpu.attrs


def test_ddp_with_nccl_in_one_process_group(tmp_path, synth_root):
    """torchrun with one process joins an NCCL group and trains through DistributedDataParallel."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "vitool"]
    config = tmp_path / "c.toml"
    config.write_text(
        'backbone = "mobilenet_v2"\npretrained = "none"\nheight = 64\nwidth = 32\nepochs = 2\n'
        'ids_per_batch = 2\nimages_per_id = 2\nbatches_per_epoch = 2\noptimizer = "adam"\nlr = 0.0035\n'
        "warmup_epochs = 1\nmilestones = []\nval_ids = 2\nworkers = 0\n"
    )
    args = ["train", "--config", str(config), "--method", "otla", "--root", str(synth_root["sysu"])]
    res = subprocess.run(
        [*cmd, *args, "--device", "cuda", "-o", str(tmp_path / "run")], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["all"]["mAP"] > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)


GPU_METHODS = ["supervised", "otla", "visible", "experts", "dcl", "pclhd", "mult"]


@pytest.mark.parametrize("method", GPU_METHODS)
def test_every_method_trains_on_the_gpu_at_resnet50_two_stream_with_amp(tmp_path, synth_root, method):
    """A few steps of each method at the released network size (ResNet-50 288x144, two-stream where the
    method is, non-local for AGW) with fp16 AMP: memory banks, EMA, soft labels, prototypes on the GPU.
    Untrained features cluster into one group, so the clusters and associations are the true ones."""
    kw = dict(method=method, device="cuda", amp="auto", backbone="resnet50", height=288, width=144, workers=-1)
    kw |= dict(pretrained="none", dcl_epochs=1, experts_stage1_epochs=1, cluster_oracle=True, association="oracle")
    engine = Engine(tiny(synth_root["sysu"], **read_by(method, kw)), tmp_path / "run", log=lambda _: None)
    assert engine.amp_dtype == torch.float16 and engine.workers > 0 and torch.backends.cudnn.benchmark
    assert engine.model.config.non_local == (method == "supervised")
    results = engine.run()
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log) and results["all"]["mAP"] >= 0
    if method in ("experts", "pclhd", "mult"):
        assert log[1]["stage"] == 2


def test_channels_last_trains_like_the_default_layout(tmp_path, synth_root):
    kw = dict(method="supervised", device="cuda", backbone="resnet50", pretrained="none", epochs=1)
    for channels_last in (False, True):
        engine = Engine(tiny(synth_root["sysu"], **kw, channels_last=channels_last), tmp_path / str(channels_last),
                        log=lambda _: None)  # fmt: skip
        weight = engine.model.stems[0][0].weight
        assert weight.is_contiguous(memory_format=torch.channels_last) == channels_last
        engine.run()


def test_a_cpu_run_resumes_on_the_gpu(tmp_path, synth_root):
    """Saved on the CPU without a scaler, resumed where fp16 AMP builds one (vitool 0.1 refused it)."""
    Engine(tiny(synth_root["sysu"], method="pclhd", epochs=1, dcl_epochs=1, cluster_oracle=True,
                association="oracle", device="cpu"), tmp_path / "run", log=lambda _: None).run()  # fmt: skip
    lines = []
    gpu = Engine(tiny(synth_root["sysu"], method="pclhd", epochs=2, dcl_epochs=1, cluster_oracle=True,
                      association="oracle", device="cuda"), tmp_path / "run", log=lines.append)  # fmt: skip
    gpu.resume(tmp_path / "run" / "last.pt")
    assert gpu.scaler.is_enabled() and gpu.start_epoch == 1 and any("on cuda" in line for line in lines)
    results = gpu.run()
    assert results["all"]["mAP"] >= 0 and gpu.method.memories[0].prototypes.is_cuda


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="one GPU visible: the two-process NCCL run needs two")
def test_two_processes_with_nccl(tmp_path, synth_root):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "vitool"]
    config = tmp_path / "c.toml"
    config.write_text(
        'backbone = "resnet50"\npretrained = "none"\nepochs = 2\nids_per_batch = 2\nimages_per_id = 2\n'
        'batches_per_epoch = 2\noptimizer = "adam"\nlr = 0.00035\nwarmup_epochs = 1\nmilestones = []\n'
        'val_ids = 2\ndcl_epochs = 1\ncluster_oracle = true\nassociation = "oracle"\n'
    )
    for method in ("pclhd", "experts"):
        args = ["train", "--config", str(config), "--method", method, "--root", str(synth_root["sysu"])]
        run = tmp_path / method
        res = subprocess.run([*cmd, *args, "--device", "cuda", "-o", str(run)], capture_output=True, text=True,
                             timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)

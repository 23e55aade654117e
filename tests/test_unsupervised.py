"""The unsupervised methods (DCL, PCLHD, MULT): loss terms against hand computations, memories that
change only in their update step, PCLHD's dynamic term carrying gradient, and short CPU runs."""

import math

import numpy as np
import pytest
import torch

from vitool.data.datasets import Sample
from vitool.engine.trainer import Engine
from vitool.errors import VitoolError
from vitool.methods.memory import ClusterMemory, contrast_loss
from vitool.methods.mult import sharpened_cross_entropy
from vitool.methods.pclhd import dynamic_logits, farthest_members
from vitool.methods.registry import build_method
from vitool.models.network import ModelConfig, VIReIDNet

from .conftest import tiny

# small clusters for the tiny fixture (6 identities, a few images each per modality)
TINY_CLUSTERS = dict(cluster_k1=4, cluster_k2=2, cluster_min_samples=2, cluster_eps=0.7, dcl_epochs=1)


def unit(*rows):
    return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def test_memory_updates_follow_the_momentum_rule():
    memory = ClusterMemory(unit([1, 0], [0, 1]), temperature=0.05, momentum=0.1)
    memory.update_sequential(unit([0, 1], [1, 0]), torch.tensor([0, 0]))
    p = np.array([0.1, 0.9]) / math.hypot(0.1, 0.9)  # after the first sample
    p = 0.1 * p + np.array([0.9, 0.0])
    np.testing.assert_allclose(memory.prototypes[0].numpy(), p / np.linalg.norm(p), rtol=1e-6)
    np.testing.assert_allclose(memory.prototypes[1].numpy(), [0, 1])  # no sample of cluster 1

    memory = ClusterMemory(unit([1, 0], [0, 1]), momentum=0.1)
    memory.update_mean(unit([0, 1], [1, 0], [0, 1]), torch.tensor([0, 0, -1]))  # -1 is ignored
    np.testing.assert_allclose(memory.prototypes[0].numpy(), np.array([0.55, 0.45]) / math.hypot(0.55, 0.45))

    centroids = ClusterMemory(unit([1, 0], [0, 1]))
    hard = ClusterMemory(unit([1, 0], [0, 1]), momentum=0.0)  # momentum 0: the prototype becomes the pick
    hard.update_hardest(unit([1, 0.1], [1, 1], [0, 1]), torch.tensor([0, 0, 1]), centroids)
    np.testing.assert_allclose(hard.prototypes.numpy(), unit([1, 1], [0, 1]).numpy(), rtol=1e-6)


def test_contrast_loss_is_cluster_nce_and_backward_leaves_the_memory_alone():
    memory = ClusterMemory(unit([1, 0], [0, 1]), temperature=0.5)
    before = memory.prototypes.clone()
    feats = unit([1, 0], [0.6, 0.8]).requires_grad_()
    loss = contrast_loss(feats, memory, torch.tensor([0, -1]))  # the -1 row is left out
    assert float(loss.detach()) == pytest.approx(math.log(1 + math.exp(-2)))
    loss.backward()
    assert torch.equal(memory.prototypes, before)
    memory.update_sequential(feats.detach(), torch.tensor([1, -1]))
    assert not torch.equal(memory.prototypes, before)


def test_dynamic_logits_take_the_farthest_positive_and_nearest_negatives():
    samples = torch.tensor([[[1.0, 0.0], [0.6, 0.8]], [[0.0, 1.0], [0.8, 0.6]]])  # 2 clusters x M=2
    query = torch.tensor([[1.0, 0.0]], requires_grad=True)
    logits = dynamic_logits(query, samples, torch.tensor([0]), temperature=1.0)
    torch.testing.assert_close(logits, torch.tensor([[0.6, 0.8]]))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0])).backward()
    assert query.grad.abs().sum() > 0


def test_farthest_members_pick_the_least_similar_member_of_each_cluster():
    features = unit([1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]).numpy()
    centres = unit([1, 0], [0, 1]).numpy()
    out = farthest_members(features, np.array([0, 0, 1, 1]), centres)
    np.testing.assert_allclose(out, features[[1, 3]])


def test_oclr_sharpens_an_attached_target():
    logits = torch.tensor([[math.log(3.0), 0.0]])
    target = torch.tensor([[0.2 * math.log(3.0), 0.0]], requires_grad=True)  # softmax(target / 0.2) = (3/4, 1/4)
    loss = sharpened_cross_entropy(logits, target, 0.2)
    assert float(loss.detach()) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    loss.backward()
    assert target.grad is not None  # not detached, as in the released code
    # MULT's memory terms take probability targets through F.cross_entropy: uniform over 4 gives log 4
    soft_ce = torch.nn.functional.cross_entropy(torch.zeros(1, 4), torch.full((1, 4), 0.25))
    assert float(soft_ce) == pytest.approx(math.log(4))


@pytest.mark.parametrize("released", [False, True])
def test_pclhd_dynamic_term_trains_the_encoder_unless_released(released):
    """The paper's intent: DPCL's gradient reaches the online encoder. The released code's queries are
    momentum-encoder features computed without gradient, so its term moves nothing."""
    torch.manual_seed(0)
    config = tiny("unused", method="pclhd", pclhd_released_dynamic=released, pretrained="none")
    samples = [Sample(f"{i}.jpg", i // 4, 0, i % 2) for i in range(16)]
    method = build_method(config, samples)
    model_config = ModelConfig.cpu_default("mobilenet_v2")
    method.adjust_model(model_config)
    model_config.height, model_config.width = 64, 32
    net = method.train_module(VIReIDNet(model_config, pretrained="none"))
    net.stage2 = method.stage2 = True
    method.offset = {0: 0, 1: 2}
    dim = net.model.feature_dim
    for m in (0, 1):
        method.memories[m] = method.new_memory(torch.randn(2, dim))
        method.hard[m] = method.new_memory(torch.randn(2, dim))
        method.dynamic[m] = torch.nn.functional.normalize(torch.randn(2, 3, dim), dim=2)
    images, modality = torch.randn(8, 3, 64, 32), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    labels, rows = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]), torch.arange(8)
    hard_before = method.hard[0].prototypes.clone()
    net.train()
    out = net(images, modality)
    feats = torch.nn.functional.normalize(out["feat"], dim=1)
    terms = method.stage2_loss(out, feats, labels, modality, rows)
    assert torch.equal(method.hard[0].prototypes, hard_before)  # the loss terms leave the memories alone
    assert terms["dpcl"].requires_grad is not released
    if not released:
        terms["dpcl"].backward()
        grads = [p.grad.abs().sum() for p in net.model.parameters() if p.grad is not None]
        assert grads and float(sum(grads)) > 0
    method.loss(net(images, modality), labels, modality, rows)  # the engine's calls: the loss computes ...
    assert torch.equal(method.hard[0].prototypes, hard_before)
    method.after_step()  # ... and the memories move after the optimiser step
    assert not torch.equal(method.hard[0].prototypes, hard_before)


@pytest.mark.parametrize("method", [pytest.param("dcl", marks=pytest.mark.slow), "pclhd", "mult"])
def test_resumed_unsupervised_run_equals_an_uninterrupted_one(tmp_path, synth_root, method):
    """Two epochs, the second in the method's own stage; memories, momentum encoder and labels resume.
    DCL is the first stage of both others, so its own run is in the slow set only."""
    kw = {"method": method, **TINY_CLUSTERS}
    if method == "dcl":
        del kw["dcl_epochs"]  # pclhd's and mult's key: a dcl run does not read it
    results_a = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "a", log=lambda _: None).run()
    Engine(tiny(synth_root["sysu"], **kw, epochs=1), tmp_path / "b", log=lambda _: None).run()
    resumed = Engine(tiny(synth_root["sysu"], **kw), tmp_path / "b", log=lambda _: None)
    resumed.resume(tmp_path / "b" / "last.pt")
    results_b = resumed.run()
    assert results_a == results_b
    state_a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    state_b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key in state_a["model_state"]:
        torch.testing.assert_close(state_a["model_state"][key], state_b["model_state"][key], rtol=0, atol=0)
    for m, prototypes in state_a["method"]["memories"].items():
        torch.testing.assert_close(prototypes, state_b["method"]["memories"][m], rtol=0, atol=0)
    if method == "pclhd":
        for key, value in state_a["method"]["ema"].items():
            torch.testing.assert_close(value, state_b["method"]["ema"][key], rtol=0, atol=0)
    if method != "dcl":
        import json

        log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
        assert log[0]["stage"] == 1 and log[1]["stage"] == 2 and "cross_coverage" in log[1]


def test_oracle_association_sends_each_image_to_the_largest_cluster_of_its_identity():
    from vitool.methods.association import oracle_association

    pid = np.array([7, 7, 7, 8, 8, 7, 8, 9])
    modality = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    intra = np.array([0, 0, 1, 2, -1, 3, 4, 4])  # visible: clusters 0 (7, 7), 1 (7), 2 (8); infrared 3, 4
    result = oracle_association(pid, modality, intra, "visible")
    np.testing.assert_array_equal(result.label, [0, 0, 1, 2, -1, 0, 2, -1])  # identity 9 has no visible cluster


def test_oracle_clusters_are_each_modalitys_identities_numbered_like_vitool_cluster():
    from vitool.methods.association import oracle_clusters

    pid = np.array([7, 9, 7, 8, 9, 7, 9])
    modality = np.array([0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(oracle_clusters(pid, modality), [0, 2, 0, 1, 4, 3, 4])
    with pytest.raises(VitoolError, match="cluster_oracle"):
        oracle_clusters(np.array([1, -1]), np.array([0, 1]))


def test_bad_clustering_and_association_values_are_one_line_errors(tmp_path, synth_root):
    from .conftest import run_cli

    common = ["train", "--method", "pclhd", "--root", synth_root["sysu"], "--backbone", "mobilenet_v2"]
    common += ["--epochs", "1", "--batches-per-epoch", "1", "--set", "height=64", "--set", "width=32"]
    res = run_cli(*common, "--set", "association=nearest", "-o", tmp_path / "a")
    assert res.returncode == 1 and "association = 'nearest'" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = run_cli(*common, "--set", "cluster_eps=0.001", "-o", tmp_path / "b")
    assert res.returncode == 1 and "cluster_eps 0.001" in res.stderr and "Traceback" not in res.stderr
    for bad, named in (("cluster_eps=-1", "cluster_eps = -1"), ("memory_momentum=1.0", "memory_momentum = 1.0")):
        res = run_cli(*common, "--set", bad, "-o", tmp_path / "c")
        assert res.returncode == 1 and named in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_right_association_has_precision_one_whatever_its_coverage():
    """Six of seven infrared images matched, every match right: precision 1 and coverage 6/7, as logged."""
    from types import SimpleNamespace

    from vitool.methods.contrast import ClusterContrast

    pid = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    modality = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    label = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, -1])  # the infrared rows in the visible clusters of their person
    report = ClusterContrast.association_report(SimpleNamespace(pid=pid, modality=modality), label, 0)
    assert report.quality == {"cross_coverage": round(6 / 7, 4), "cross_precision": 1.0, "cross_reachable": 1.0}
    label[3] = 1  # one match wrong
    report = ClusterContrast.association_report(SimpleNamespace(pid=pid, modality=modality), label, 0)
    assert report.quality["cross_precision"] == round(5 / 6, 4)


def test_fewer_clusters_than_people_cap_what_an_association_can_get_right():
    """Persons 0 and 1 share one visible cluster (its majority is 0): person 1's infrared images have no cluster
    of their own to be given, so half of them are out of reach, and the best association scores just that."""
    from types import SimpleNamespace

    from vitool.methods.contrast import ClusterContrast

    pid = np.array([0, 0, 0, 1, 1, 2, 2, 0, 1, 2, 1])
    modality = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    label = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0])
    report = ClusterContrast.association_report(SimpleNamespace(pid=pid, modality=modality), label, 0)
    assert report.quality == {"cross_coverage": 1.0, "cross_precision": 0.5, "cross_reachable": 0.5}

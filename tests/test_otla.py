"""OTLA's parts against hand computations, its labels, and a short run on synthetic SYSU."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitool.engine.config import TrainConfig
from vitool.errors import VitoolError
from vitool.io import LabelSet, make_provenance, write_labels
from vitool.methods.labels import labels_from_file, visible_training_labels
from vitool.methods.otla import GradientReversal, grl_coefficient, prediction_alignment_loss
from vitool.models.losses import batch_hard_triplet

from .conftest import tiny


def test_grl_coefficient_follows_the_dann_schedule():
    assert grl_coefficient(0) == 0.0
    assert grl_coefficient(2000) == pytest.approx(2 / (1 + math.exp(-2)) - 1)  # 0.76, ref-otla-eval.md §4
    assert grl_coefficient(10_000) > 0.9999


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    GradientReversal.apply(x, 0.25).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((4, 3), -0.25))


def test_batch_hard_triplet_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    f, y = torch.randn(10, 5, generator=g), torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])
    d = torch.cdist(f, f)
    per_anchor = []
    for i in range(10):
        hardest_pos = max(float(d[i, j]) for j in range(10) if y[j] == y[i])
        hardest_neg = min(float(d[i, j]) for j in range(10) if y[j] != y[i])
        per_anchor.append(max(0.0, hardest_pos - hardest_neg + 0.3))
    assert float(batch_hard_triplet(f, y)) == pytest.approx(np.mean(per_anchor), abs=1e-5)


def test_prediction_alignment_loss_matches_the_paper_equations():
    g = torch.Generator().manual_seed(1)
    z_v, z_r = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)

    def mix(a, b):  # Eq. 6/8: softmax over cosine similarities, applied to the other side's logits
        sim = [[float(F.cosine_similarity(a[i], b[j], dim=0)) for j in range(6)] for i in range(6)]
        return torch.softmax(torch.tensor(sim), dim=1) @ b

    def kl(p, q):  # KL(softmax p || softmax q), summed over classes, averaged over rows
        p, q = torch.softmax(p, 1), torch.softmax(q, 1)
        return float((p * (p / q).log()).sum(1).mean())

    vr, rv = prediction_alignment_loss(z_v, z_r)
    assert float(vr) == pytest.approx(kl(z_v, mix(z_v, z_r)), abs=1e-5)
    assert float(rv) == pytest.approx(kl(mix(z_r, z_v), mix(z_r, z_r)), abs=1e-5)
    same = torch.ones(6, 4)
    assert float(sum(prediction_alignment_loss(same, same))) == pytest.approx(0.0, abs=1e-6)


def test_visible_labels_come_from_ground_truth_or_a_labels_file(tmp_path, synth_root):
    from vitool.data.datasets import load_split

    samples = load_split("sysu", str(synth_root["sysu"]), "train")
    config = TrainConfig(root=str(synth_root["sysu"]))
    labels, source = visible_training_labels(config, samples)
    modality = np.array([s.modality for s in samples])
    assert source == "ground truth" and (labels[modality == 1] == -1).all()
    assert (labels[modality == 0] == np.array([s.pid for s in samples])[modality == 0]).all()

    path = np.array([s.path for s in samples], dtype=object)
    clusters = np.arange(len(samples)) % 7
    clusters[0] = 99  # a singleton class is dropped
    write_labels(tmp_path / "l.h5", LabelSet(path, modality.astype(np.uint8), clusters), make_provenance({}))
    labels, _ = visible_training_labels(TrainConfig(labels=str(tmp_path / "l.h5")), samples)
    assert labels[0] == -1 and (labels[1:][modality[1:] == 0] == clusters[1:][modality[1:] == 0]).all()

    paths = np.array([f"other/{i}.jpg" for i in range(5)], dtype=object)
    other = LabelSet(paths, np.zeros(5, np.uint8), np.zeros(5, np.int64))
    write_labels(tmp_path / "other.h5", other, make_provenance({}))
    with pytest.raises(VitoolError, match="other.h5.*has no row for .* training images"):
        labels_from_file(tmp_path / "other.h5", samples)


def test_otla_assigns_infrared_labels_and_logs_their_accuracy(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="otla", epochs=2, val_ids=0), tmp_path / "run", lambda _: None)
    engine.run()
    import json

    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["ot_cost"] for r in log] == ["prototypes", "probs"]
    assert all(0 <= r["ir_label_accuracy"] <= 100 and r["modality"] > 0 and r["pal"] >= 0 for r in log)
    bank, modality = engine.method.bank, engine.method.modality
    assert (bank[modality == 1] >= 0).all() and (bank[modality == 0] == -1).all()


def test_the_bank_is_the_sinkhorn_solution_over_the_classifier_predictions(tmp_path, synth_root):
    from vitool.assign.ot import sinkhorn_equipartition
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="otla", val_ids=0), tmp_path / "run", lambda _: None)
    labels = engine.method.epoch_labels(engine.context, 1).labels  # after epoch 0: from the classifier
    ir = [i for i, s in enumerate(engine.train_samples) if s.modality == 1]
    probs = engine.features([engine.train_samples[i] for i in ir], {}).probs
    best, _, _ = sinkhorn_equipartition(np.log(probs.astype(np.float64)), 25.0)
    np.testing.assert_array_equal(labels[ir], best)
    visible = [i for i, s in enumerate(engine.train_samples) if s.modality == 0]
    assert (labels[visible] == engine.method.visible[visible]).all()


def test_train_with_labels_of_other_images_is_a_one_line_error(tmp_path, synth_root):
    from .conftest import run_cli

    paths = np.array([f"cam1/{i:04d}/0001.jpg" for i in range(3)], dtype=object)
    write_labels(tmp_path / "l.h5", LabelSet(paths, np.zeros(3, np.uint8), np.arange(3)), make_provenance({}))
    res = run_cli(
        "train", "--method", "otla", "--dataset", "sysu", "--root", synth_root["sysu"],
        "--labels", tmp_path / "l.h5", "--backbone", "mobilenet_v2", "--pretrained", "none", "-o", tmp_path / "run",
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and "l.h5" in res.stderr and "has no row for" in res.stderr
    assert not (tmp_path / "run" / "last.pt").exists()


def test_oracle_bank_holds_the_true_identities(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="otla", ot_oracle=True), tmp_path / "run", lambda _: None)
    engine.method.epoch_labels(engine.context, 0)
    assert engine.method.report().quality["ir_label_accuracy"] == 100.0

"""The broken-association control: every cross-modal link names another person, each modality's own
grouping stays right (ot_shuffled, association = "shuffled", experts_shuffled)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitool.errors import VitoolError
from vitool.methods.association import associate, shuffled_identities
from vitool.modality import INFRARED, VISIBLE

from .conftest import tiny


def _toy():
    pid = np.array([1, 1, 2, 2, 3, 3, 4, 1, 1, 2, 3, 3, 5])
    modality = np.array([VISIBLE] * 7 + [INFRARED] * 6)
    return pid, modality


def test_shuffled_identities_move_every_shared_infrared_identity_and_keep_the_groups():
    pid, modality = _toy()
    moved = shuffled_identities(pid, modality, seed=3)
    vis, ir = modality == VISIBLE, modality == INFRARED
    assert (moved[vis] == pid[vis]).all()
    assert (moved[ir] != pid[ir])[pid[ir] != 5].all()  # 1, 2, 3 are in both modalities: all moved
    assert moved[ir][pid[ir] == 5].tolist() == [5]  # an infrared-only identity has no link to break
    assert sorted(set(moved[ir][pid[ir] != 5].tolist())) == [1, 2, 3]  # a permutation of the shared ones
    for p in (1, 2, 3):  # the same person's infrared images stay together
        assert len(set(moved[ir][pid[ir] == p].tolist())) == 1
    assert (shuffled_identities(pid, modality, seed=3) == moved).all()
    with pytest.raises(VitoolError, match="two identities"):
        shuffled_identities(np.array([1, 1]), np.array([VISIBLE, INFRARED]))


@pytest.mark.parametrize(("space", "unmatched"), [("visible", 5), ("infrared", 4)])
def test_shuffled_association_is_never_right_and_the_oracle_always(space, unmatched):
    pid, modality = _toy()
    intra = np.array([0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7])
    other = modality != (VISIBLE if space == "visible" else INFRARED)
    owner = dict(zip(intra.tolist(), pid.tolist(), strict=False))  # each cluster is one identity here
    for name, right in (("oracle", True), ("shuffled", False)):
        label = associate(name, None, modality, intra, space, None, pid=pid, seed=1).label
        for p, lab in zip(pid[other].tolist(), label[other].tolist(), strict=True):
            if p == unmatched:  # its person is not in the other modality: no cluster to take
                assert lab == -1
            else:
                assert (owner[lab] == p) is right, (name, p, lab)


def test_otla_shuffled_bank_is_wrong_for_every_infrared_image(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="otla", ot_shuffled=True), tmp_path / "run", lambda _: None)
    engine.method.epoch_labels(engine.context, 0)
    assert engine.method.report().quality["ir_label_accuracy"] == 0.0
    assert engine.method.report().settings["ot_cost"] == "shuffled"


def test_experts_shuffled_pairs_are_all_wrong_and_oracle_pairs_all_right(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    for key, precision in (("experts_oracle", 1.0), ("experts_shuffled", 0.0)):
        config = tiny(synth_root["sysu"], method="experts", experts_stage1_epochs=0, **{key: True})
        engine = Engine(config, tmp_path / key, lambda _: None)
        engine.method.epoch_labels(engine.context, 0)
        report = engine.method.report()
        assert report.quality["cre_consistent_precision"] == precision, report


def test_a_shuffled_otla_and_oracle_together_are_refused():
    from vitool.methods.otla import OTLAOptions

    with pytest.raises(ValueError, match="ot_shuffled"):
        OTLAOptions(ot_oracle=True, ot_shuffled=True)


def test_otla_random_bank_is_an_equipartition_fixed_for_the_run(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="otla", ot_random=True), tmp_path / "run", lambda _: None)
    method = engine.method
    ir = method.modality == INFRARED
    first = method.epoch_labels(engine.context, 0).labels.copy()
    counts = np.bincount(first[ir], minlength=method.classes)
    assert counts.max() - counts.min() <= 1  # every visible class gets its share of infrared images
    assert (first[~ir] == method.visible[~ir]).all()
    assert (method.epoch_labels(engine.context, 3).labels == first).all()  # the same draw every epoch
    assert method.report().settings["ot_cost"] == "random-fixed"
    assert method.report().quality["ir_label_accuracy"] < 50.0


def test_otla_ablations_drop_their_loss_terms(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    config = tiny(synth_root["sysu"], method="otla", ot_random=True, otla_ir_loss=False, otla_pal=False)
    engine = Engine(config, tmp_path / "run", lambda _: None)
    logits = torch.randn(8, engine.method.classes)
    out = {"logits": logits, "pre_bn": torch.randn(8, 16), "modality_logit": torch.randn(8)}
    modality = torch.tensor([VISIBLE] * 4 + [INFRARED] * 4)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    _, terms = engine.method.loss(out, labels, modality, torch.arange(8))
    assert sorted(terms) == ["ce_v", "modality", "triplet_v"]  # Table 2 row 2: L_V-ReID + L_D


def test_a_random_otla_with_the_oracle_or_the_shuffle_is_refused():
    from vitool.methods.otla import OTLAOptions

    for other in ("ot_oracle", "ot_shuffled"):
        with pytest.raises(ValueError, match="ot_random"):
            OTLAOptions(ot_random=True, **{other: True})

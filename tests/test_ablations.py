"""The ablation keys of each paper's main table: each drops exactly its component (docs/results.md runs
the rows; docs/training.md lists the keys)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitool.modality import INFRARED, VISIBLE

from .test_experts import _tiny_method
from .test_fidelity import _ce, _mult, _pclhd, _pclhd_batch


def test_pclhd_rows_hpcl_and_dpcl_off():
    base = _pclhd()
    feats, labels, modality, rows = _pclhd_batch(base)
    full = base.stage2_loss({}, feats, labels, modality, rows)
    method = _pclhd(pclhd_hpcl=False)  # PGM's baseline: CE against the centroids, the cross term too
    _pclhd_batch(method)
    terms = method.stage2_loss({}, feats, labels, modality, rows)
    own = sum(
        _ce(feats[i], method.memories[m].prototypes, labels[i] - method.offset[m])
        for m, i in ((VISIBLE, [0, 2]), (INFRARED, [1, 3]))
    )
    assert float(terms["hpcl"]) == pytest.approx(0.5 * own, rel=1e-5)
    cross = _ce(feats[[0, 2]], method.memories[INFRARED].prototypes, torch.tensor([1, 0]))
    assert float(terms["cross"]) == pytest.approx(0.125 * cross, rel=1e-5)  # the same 4 : 1 as the full loss
    assert float(terms["dpcl"]) == pytest.approx(float(full["dpcl"]))  # DPCL untouched
    method = _pclhd(pclhd_dpcl=False)
    _pclhd_batch(method)
    terms = method.stage2_loss({}, feats, labels, modality, rows)
    assert float(full["dpcl"]) > 0 and float(terms["dpcl"]) == 0.0
    assert float(terms["hpcl"]) == pytest.approx(float(full["hpcl"])) and float(terms["cross"]) == pytest.approx(
        float(full["cross"])
    )


def test_mult_without_oclr_keeps_its_other_terms():
    terms = {}
    for oclr in (True, False):
        method, features = _mult(cluster_k1=2, cluster_k2=1, mult_oclr=oclr)
        method.stage2_labels(None, features)
        feats, rows, modality = torch.as_tensor(features), torch.arange(8), torch.as_tensor(method.modality)
        labels = torch.as_tensor(method.space_labels[VISIBLE])
        terms[oclr] = {k: float(v) for k, v in method.stage2_loss({}, feats, labels, modality, rows).items()}
    assert terms[True]["oclr"] > 0 and terms[False]["oclr"] == 0.0
    for key in ("modality_specific", "modality_aggregated"):
        assert terms[False][key] == pytest.approx(terms[True][key])


def test_experts_without_cre_keep_the_consistent_pairs_and_without_clae_drop_homogeneity():
    pairs = {
        "pairs_consistent": np.array([[0, 1]]),
        "pairs_single": np.array([[1, 0]]),
        "pairs_contradictory": np.array([[2, 0]]),
    }
    full = _tiny_method()._links(pairs)
    assert list(full["strong"]) == [1, 0, -1] and full["candidates"][2, 0]
    without = _tiny_method(experts_cre=False)._links(pairs)
    assert list(without["strong"]) == [1, -1, -1] and not without["candidates"].any()
    assert list(without["consistent_v"]) == list(full["consistent_v"]) == [1, -1, -1]

    parts = {}
    for clae in (True, False):
        torch.manual_seed(0)  # the same heads for both
        method = _tiny_method(experts_clae=clae)
        method.net.stage2, method.epoch, method.relations = True, 1, full
        x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
        modality, labels = torch.tensor([0, 0, 0, 1, 1, 1]), torch.tensor([0, 0, 2, 1, 1, 0])
        parts[clae] = method.loss(method.net(x, modality), labels, modality, torch.arange(6))[1]
    assert "homogeneity" in parts[True] and "homogeneity" not in parts[False]
    assert parts[False]["strong"] == pytest.approx(parts[True]["strong"])


def test_otla_without_the_discriminator_drops_l_d_only(tmp_path, synth_root):
    from vitool.engine.trainer import Engine

    from .conftest import tiny

    engine = Engine(tiny(synth_root["sysu"], method="otla", otla_discriminator=False), tmp_path / "run", print)
    logits = torch.randn(8, engine.method.classes)
    out = {"logits": logits, "pre_bn": torch.randn(8, 16), "modality_logit": torch.randn(8)}
    modality = torch.tensor([VISIBLE] * 4 + [INFRARED] * 4)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    _, terms = engine.method.loss(out, labels, modality, torch.arange(8))
    assert sorted(terms) == ["ce_r", "ce_v", "pal", "triplet_r", "triplet_v"]  # Table 2 row 5: no L_D

"""Where the released training code and vitool differed without saying so, vitool now does what the code
does: each behaviour against values computed here by hand on tiny tensors (PCLHD's stage-2 memory loss and
hard-memory start, MULT's two-space batches, its M_A update order and O's soft own-memory target)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vitool.data.datasets import Sample
from vitool.data.samplers import CrossModalIdentitySampler
from vitool.methods.memory import ClusterMemory
from vitool.methods.pclhd import hard_memory_start
from vitool.methods.registry import build_method
from vitool.modality import INFRARED, VISIBLE

from .conftest import tiny


def unit(*rows):
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=1)


def _ce(feats, prototypes, labels, temperature=0.05):
    return float(F.cross_entropy(F.normalize(feats, dim=1) @ prototypes.t() / temperature, labels))


def _pclhd(**options):
    samples = [Sample(f"{i}.jpg", i // 4, 0, i % 2) for i in range(16)]
    method = build_method(tiny("unused", method="pclhd", **options), samples)
    method.stage2, method.offset = True, {VISIBLE: 0, INFRARED: 2}
    return method


def _pclhd_batch(method):
    """Two clusters per modality with fixed memories; one visible and one infrared sample per cluster."""
    method.memories = {VISIBLE: ClusterMemory(unit([1, 0], [0, 1])), INFRARED: ClusterMemory(unit([1, 1], [1, -1]))}
    method.hard = {VISIBLE: ClusterMemory(unit([1, 0.3], [0.2, 1])), INFRARED: ClusterMemory(unit([1, 0.5], [0.4, -1]))}
    method.dynamic = {m: unit([1, 0], [0, 1], [1, 1], [1, -1]).reshape(2, 2, 2) for m in (VISIBLE, INFRARED)}
    method.space_modality = INFRARED  # visible images take infrared clusters through the cross term
    method.cross = np.array([1, -1, 0, -1])  # rows 0 and 2 are visible, with partners 3 and 2 (local 1, 0)
    feats = unit([0.7, 0.72], [1, -0.02], [0.75, 0.7], [1, 0.03])  # near the boundaries: the hinge is active
    modality = torch.tensor([VISIBLE, INFRARED, VISIBLE, INFRARED])
    labels = torch.tensor([0, 2, 1, 3])
    return feats, labels, modality, torch.arange(4)


def test_pclhd_stage2_memory_loss_is_the_released_hard_ce_plus_centroid_hinge():
    method = _pclhd()
    feats, labels, modality, rows = _pclhd_batch(method)
    terms = method.stage2_loss({}, feats, labels, modality, rows)
    hpcl, cross = 0.0, 0.0
    for m, own in ((VISIBLE, [0, 2]), (INFRARED, [1, 3])):
        local = labels[own] - method.offset[m]
        hard = _ce(feats[own], method.hard[m].prototypes, local)
        centroid = _ce(feats[own], method.memories[m].prototypes, local)
        hpcl += 0.5 * hard + 0.5 * max(0.0, centroid - 0.2)  # the released CMhard loss, per modality
    target = torch.tensor([1, 0])  # the visible rows' infrared partners, as rows of the infrared memories
    hard = _ce(feats[[0, 2]], method.hard[INFRARED].prototypes, target)
    centroid = _ce(feats[[0, 2]], method.memories[INFRARED].prototypes, target)
    cross = 0.25 * (0.5 * hard + 0.5 * max(0.0, centroid - 0.2))  # 0.125 CE(hard) + 0.125 hinge
    assert float(terms["hpcl"]) == pytest.approx(hpcl, rel=1e-5)  # lambda 0.5 x (CE(hard) + hinge)
    assert float(terms["cross"]) == pytest.approx(cross, rel=1e-5)
    assert hpcl > 0.5 * sum(  # the hinge is active here, so the old HPCL (CE(hard) alone) differs
        _ce(feats[own], method.hard[m].prototypes, labels[own] - method.offset[m])
        for m, own in ((VISIBLE, [0, 2]), (INFRARED, [1, 3]))
    )


def test_pclhd_paper_form_is_one_option_away():
    method = _pclhd(pclhd_centroid_hinge=False)
    feats, labels, modality, rows = _pclhd_batch(method)
    terms = method.stage2_loss({}, feats, labels, modality, rows)
    hard = sum(
        _ce(feats[own], method.hard[m].prototypes, labels[own] - method.offset[m])
        for m, own in ((VISIBLE, [0, 2]), (INFRARED, [1, 3]))
    )
    assert float(terms["hpcl"]) == pytest.approx(0.5 * hard, rel=1e-5)  # eq. 15: CE(hard), lambda 0.5
    cross = _ce(feats[[0, 2]], method.hard[INFRARED].prototypes, torch.tensor([1, 0]))
    assert float(terms["cross"]) == pytest.approx(0.25 * cross, rel=1e-5)


class _WritingMemory(torch.autograd.Function):
    """The released memory, written here from its description: logits against [centroids; hard] in the
    forward; in the backward the gradient through the memory as it is then, after which every cluster's
    batch members move its centroid (their mean) and its hard prototype (the member least like the centroid)."""

    @staticmethod
    def forward(ctx, x, y, bank):
        ctx.save_for_backward(x, y)
        ctx.bank = bank
        return x @ bank.t()

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        out, half = grad @ ctx.bank, len(ctx.bank) // 2
        for k in y.unique().tolist():
            members = x[y == k]
            hardest = members[(members @ ctx.bank[k]).argmin()]
            ctx.bank[k] = F.normalize(0.1 * ctx.bank[k] + 0.9 * members.mean(0), dim=0)
            ctx.bank[k + half] = F.normalize(0.1 * ctx.bank[k + half] + 0.9 * hardest, dim=0)
        return out, None, None


def _released_memory_loss(x, y, bank):
    centroid, hard = (_WritingMemory.apply(x, y, bank) / 0.05).chunk(2, dim=1)
    return 0.5 * (F.cross_entropy(hard, y) + torch.relu(F.cross_entropy(centroid, y) - 0.2))


def test_pclhd_released_memory_order_gives_the_released_gradient_and_memories():
    """The cross term, built last, runs its backward first: it writes the visible features into the infrared
    memories before the infrared term's gradient reads them (item 12 of the fidelity review)."""
    grads = {}
    for released in (False, True):
        method = _pclhd(pclhd_released_memory_order=released)
        feats, labels, modality, rows = _pclhd_batch(method)
        banks = {m: torch.cat([method.memories[m].prototypes, method.hard[m].prototypes]) for m in (VISIBLE, INFRARED)}
        x = feats.clone().requires_grad_()
        own_ir = _released_memory_loss(x[[1, 3]], labels[[1, 3]] - 2, banks[INFRARED])
        own_vis = _released_memory_loss(x[[0, 2]], labels[[0, 2]], banks[VISIBLE])
        cross = _released_memory_loss(x[[0, 2]], torch.tensor([1, 0]), banks[INFRARED])
        (own_ir + own_vis + 0.25 * cross).backward()
        mine = feats.clone().requires_grad_()
        terms = method.stage2_loss({}, mine, labels, modality, rows)
        (terms["hpcl"] + terms["cross"]).backward()
        grads[released] = mine.grad
        if released:
            torch.testing.assert_close(mine.grad, x.grad, rtol=1e-5, atol=1e-6)
            method.update_memories(feats, labels, modality, rows)
            for m in (VISIBLE, INFRARED):
                mine_bank = torch.cat([method.memories[m].prototypes, method.hard[m].prototypes])
                torch.testing.assert_close(mine_bank, banks[m], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(grads[False], grads[True], atol=1e-3)  # vitool's order reads the memory before


def test_pclhd_hard_memory_starts_at_the_centroids_as_released_or_at_the_farthest_member():
    features = unit([1, 0], [0.6, 0.8], [0, 1], [0.8, 0.6]).numpy()
    local = np.array([0, 0, 1, 1])
    centroids = unit([1, 0], [0, 1])
    torch.testing.assert_close(hard_memory_start("centroid", features, local, centroids), centroids)
    farthest = hard_memory_start("farthest", features, local, centroids)
    torch.testing.assert_close(farthest, torch.as_tensor(features[[1, 3]]))  # eq. 6
    assert _pclhd().options.pclhd_hard_init == "centroid"
    with pytest.raises(ValueError, match="pclhd_hard_init = 'far'"):
        _pclhd(pclhd_hard_init="far")


# ------------------------------------------------------------------------------------------------ MULT


def test_a_two_space_batch_takes_half_its_clusters_from_each_space():
    """MULT's released StageThreeSampler: 6 clusters of the visible space (visible images by their label,
    infrared ones by their cross label) and 6 of the infrared space (the reverse), in every batch."""
    rng = np.random.default_rng(0)
    n_v, n_r = 120, 96
    visible_space = np.r_[rng.integers(0, 10, n_v), rng.integers(0, 10, n_r)]  # clusters 0-9
    infrared_space = np.r_[rng.integers(10, 18, n_v), rng.integers(10, 18, n_r)]  # clusters 10-17
    sampler = CrossModalIdentitySampler(
        visible_space[:n_v], visible_space[n_v:], n_v, 12, 3, seed=1, batches=5,
        second=(infrared_space[:n_v], infrared_space[n_v:]),
    )  # fmt: skip
    for batch in sampler:
        batch = np.asarray(batch)
        vis, ir = batch[: 12 * 3], batch[12 * 3 :]
        assert len(ir) == 36 and (vis < n_v).all() and (ir >= n_v).all()
        for half, space in ((slice(0, 18), visible_space), (slice(18, 36), infrared_space)):
            v_ids, r_ids = space[vis[half]].reshape(6, 3), space[ir[half]].reshape(6, 3)
            assert (v_ids == v_ids[:, :1]).all() and (r_ids == r_ids[:, :1]).all()  # 3 images per cluster
            assert np.array_equal(v_ids[:, 0], r_ids[:, 0]) and len(set(v_ids[:, 0])) == 6  # aligned, distinct
        assert set(visible_space[vis[:18]]) <= set(range(10)) and set(infrared_space[vis[18:]]) <= set(range(10, 18))


def _mult(**options):
    """MULT after a stage-2 relabelling of 4 visible and 4 infrared images: 2 clusters per modality."""
    samples = [Sample(f"v{i}", i // 2, 1, VISIBLE) for i in range(4)] + [
        Sample(f"r{i}", i // 2, 3, INFRARED) for i in range(4)
    ]
    method = build_method(tiny("unused", method="mult", **options), samples)
    method.stage2, method.epoch, method.dcl_epochs = True, 0, 0
    method.intra = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    method.offset = {VISIBLE: 0, INFRARED: 2}
    method.memories = {VISIBLE: ClusterMemory(unit([1, 0], [0, 1])), INFRARED: ClusterMemory(unit([1, 0.2], [0.1, 1]))}
    features = unit([1, 0.1], [0.9, 0.2], [0.1, 1], [0.2, 0.9], [1, 0.3], [0.8, 0.1], [0.2, 1], [0.1, 0.7]).numpy()
    return method, features


def test_mult_relabels_in_both_spaces_and_draws_half_of_each_batch_from_the_other():
    method, features = _mult(cluster_k1=2, cluster_k2=1)
    labels = method.stage2_labels(None, features)  # the visible space: the first cross epoch
    assert method.space_modality == VISIBLE
    np.testing.assert_array_equal(labels, method.space_labels[VISIBLE])
    second = method.stage2_second_space()
    np.testing.assert_array_equal(second, method.space_labels[INFRARED])
    assert set(labels[:4]) <= {0, 1} and set(labels[4:]) <= {0, 1}  # everyone in visible clusters
    assert set(second[:4]) <= {2, 3} and set(second[4:]) <= {2, 3}  # and in infrared ones
    assert method.space_soft[VISIBLE].shape == (8, 2) and method.space_soft[INFRARED].shape == (8, 2)
    torch.testing.assert_close(method.space_soft[INFRARED].sum(1), torch.ones(8))


def test_mult_aggregated_memory_takes_the_infrared_images_first():
    """The released backward updates M_A with the infrared features, then the visible views (momentum 0.1:
    the last update nearly replaces a prototype, so the order shows)."""
    method, features = _mult(cluster_k1=2, cluster_k2=1)
    method.stage2_labels(None, features)
    a0 = method.aggregated.prototypes.clone()
    feats = unit([0.3, 1], [1, 0.4])  # one visible, one infrared image of visible-space cluster 0
    rows = torch.tensor([0, 4])
    modality = torch.tensor([VISIBLE, INFRARED])
    method.space_labels[VISIBLE] = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    method.update_memories(feats, torch.tensor([0, 0]), modality, rows)
    p = F.normalize(0.1 * a0[0] + 0.9 * feats[1], dim=0)  # infrared first
    p = F.normalize(0.1 * p + 0.9 * feats[0], dim=0)  # then visible
    torch.testing.assert_close(method.aggregated.prototypes[0], p)
    torch.testing.assert_close(method.aggregated.prototypes[1], a0[1])


def test_mult_other_modality_own_memory_term_reads_its_soft_label():
    method, features = _mult(cluster_k1=2, cluster_k2=1)
    method.stage2_labels(None, features)
    # a soft label far from one-hot (the transfer's are nearly one-hot on this toy), so hard and soft differ
    method.space_soft[INFRARED] = torch.tensor(
        [[0.7, 0.3]] * 2 + [[0.2, 0.8]] * 2 + [[0.6, 0.4]] * 2 + [[0.3, 0.7]] * 2
    )
    feats = torch.as_tensor(features)
    rows, modality = torch.arange(8), torch.as_tensor(method.modality)
    terms = method.stage2_loss({}, feats, torch.as_tensor(method.space_labels[VISIBLE]), modality, rows)
    s, o = modality == VISIBLE, modality == INFRARED
    logits = lambda memory: feats @ memory.prototypes.t() / 0.05  # noqa: E731
    soft_s, soft_o = method.space_soft[VISIBLE], method.space_soft[INFRARED]
    expected = (
        F.cross_entropy(logits(method.memories[VISIBLE])[s], soft_s[s])
        + F.cross_entropy(logits(method.cross_memory)[o], soft_s[o])
        + F.cross_entropy(logits(method.memories[INFRARED])[o], soft_o[o])  # O's soft label y~_o, not y^_o
    )
    assert float(terms["modality_specific"]) == pytest.approx(float(expected), rel=1e-5)
    hard = expected - F.cross_entropy(logits(method.memories[INFRARED])[o], soft_o[o])
    hard = hard + F.cross_entropy(logits(method.memories[INFRARED])[o], soft_o[o].argmax(1))  # the old target
    assert abs(float(terms["modality_specific"]) - float(hard)) > 0.5


# ------------------------------------------------------------------------- the released pipelines end to end


def test_channel_random_erasing_fills_a_light_grey_rectangle_of_up_to_40_percent():
    from vitool.data.transforms import REID_ERASING_FILL, ChannelRandomErasing

    image = torch.zeros(3, 96, 48)
    areas = []
    for seed in range(200):
        torch.manual_seed(seed)
        out = ChannelRandomErasing(1.0)(image)
        erased = (out != 0).all(dim=0)
        rows, cols = erased.any(dim=1).nonzero().flatten(), erased.any(dim=0).nonzero().flatten()
        box = out[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # one rectangle, all of it filled
        assert torch.equal(box, torch.tensor(REID_ERASING_FILL).view(3, 1, 1).expand_as(box))
        areas.append(erased.sum().item() / (96 * 48))
    assert 0.015 < min(areas) and max(areas) < 0.42 and max(areas) > 0.33  # beyond torchvision's third
    assert torch.equal(ChannelRandomErasing(0.0)(image), image) and not image.any()  # the input is untouched


def test_channel_adap_gray_copies_a_channel_three_quarters_of_the_time_else_greys_half_of_the_rest():
    from vitool.data.transforms import ChannelAdapGray

    image = torch.randn(3, 8, 4)
    grey = 0.2989 * image[0] + 0.5870 * image[1] + 0.1140 * image[2]
    outcomes = {"r": 0, "g": 0, "b": 0, "grey": 0, "same": 0}
    torch.manual_seed(0)
    for _ in range(4000):
        out = ChannelAdapGray(0.5)(image)
        matches = [
            name for name, channel in zip("rgb", image, strict=True) if torch.equal(out, channel.expand(3, -1, -1))
        ]
        if matches:
            outcomes[matches[0]] += 1
        elif torch.allclose(out, grey.expand(3, -1, -1)):
            outcomes["grey"] += 1
        else:
            assert torch.equal(out, image)
            outcomes["same"] += 1
    expected = {"r": 1000, "g": 1000, "b": 1000, "grey": 500, "same": 500}
    assert all(abs(outcomes[k] - v) < 0.15 * v for k, v in expected.items()), outcomes


def test_the_sampler_draws_without_replacement_where_an_identity_has_enough_images():
    labels = np.repeat(np.arange(4), [12, 12, 3, 12])  # identity 2 has fewer images than a group
    kwargs = dict(ir_offset=len(labels), ids=4, per_id=6, seed=0, batches=50)
    released = CrossModalIdentitySampler(labels, labels, replacement=False, **kwargs)
    for batch in released:
        for group in np.split(np.array(batch[: 4 * 6]), 4):
            owner = labels[group[0]]
            assert (labels[group] == owner).all()
            assert owner == 2 or len(set(group)) == 6  # only the short identity repeats an image
    agw = CrossModalIdentitySampler(labels, labels, **kwargs)  # AGW's: with replacement
    repeats = sum(len(set(g)) < 6 for b in agw for g in np.split(np.array(b[:24]), 4) if labels[g[0]] != 2)
    assert repeats > 50


def test_flip_averaged_test_features_equal_the_hand_computed_mean(synth_root, tmp_path):
    from vitool.engine.trainer import Engine
    from vitool.models.features import extract

    engine = Engine(tiny(synth_root["sysu"], method="pclhd"), tmp_path / "run", log=lambda _: None)
    model = engine.model.eval()
    samples = engine.val_samples[:6]
    got = extract(model, samples, engine.root, torch.device("cpu"), batch_size=3)["features"]
    from vitool.data.images import ImageDataset
    from vitool.data.transforms import test_transform

    data = ImageDataset(samples, engine.root, test_transform(64, 32))
    images = torch.stack([data[i][0] for i in range(len(samples))])
    modality = torch.tensor([s.modality for s in samples])
    with torch.no_grad():
        plain, mirrored = model(images, modality)["feat"], model(images.flip(3), modality)["feat"]
    expected = F.normalize((F.normalize(plain, dim=1) + F.normalize(mirrored, dim=1)) / 2, dim=1)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    assert not np.allclose(got, F.normalize(plain, dim=1).numpy(), atol=1e-3)  # the mirror did change them


def test_the_experts_common_classifier_keeps_its_start_through_hel_and_the_bnneck_trains_with_the_encoder(
    synth_root, tmp_path
):
    from vitool.engine.trainer import Engine

    config = tiny(synth_root["sysu"], method="experts", epochs=2, experts_stage1_epochs=1, weight_decay=5e-2)
    engine = Engine(config, tmp_path / "run", log=lambda _: None)
    w_c = engine.model.classifier.weight
    start, bnneck = w_c.detach().clone(), {id(p) for p in engine.model.bnneck.parameters()}
    groups = engine.optimizer.param_groups
    assert bnneck <= {id(p) for p in groups[0]["params"]}  # the backbone's rate, as released
    assert [id(p) for p in groups[2]["params"]] == [id(w_c)] and groups[2]["held_until"] == 1
    engine.start_epoch, engine.config.epochs = 0, 1  # HEL only
    engine.run()
    assert torch.equal(w_c.detach(), start)  # released: W^c joins the optimiser at CRE
    engine.config.epochs = 2
    engine.start_epoch = 1
    engine.run()
    assert not torch.equal(w_c.detach(), start)  # and trains from there


def test_clustering_and_association_read_the_networks_own_features_whatever_the_test_recipe(synth_root, tmp_path):
    """The released clustering (MULT) and CRE (the experts) read BN features without flip or L2; only
    the test and the held-out validation follow the test recipe."""
    from vitool.engine.trainer import Engine

    engine = Engine(tiny(synth_root["sysu"], method="experts"), tmp_path / "run", log=lambda _: None)
    samples = engine.train_samples[:4]
    read = engine.context.extract(samples).features
    model = engine.model.eval()
    from vitool.data.images import ImageDataset
    from vitool.data.transforms import test_transform

    data = ImageDataset(samples, engine.root, test_transform(64, 32))
    images = torch.stack([data[i][0] for i in range(len(samples))])
    with torch.no_grad():
        own = model(images, torch.tensor([s.modality for s in samples]))["feat"]
    np.testing.assert_allclose(read, own.numpy(), atol=1e-5)
    assert engine.model.config.test_flip == "mean" and engine.features(samples).features.shape == read.shape


def test_mults_sinkhorn_tests_its_stopping_rule_after_iterations_1_11_21_as_released():
    from vitool.assign.mult import sinkhorn_scalings

    assert sinkhorn_scalings(np.ones((4, 3), np.float32))[2] == 1  # converged at once: stops after the first
    rng = np.random.default_rng(0)
    assert sinkhorn_scalings(rng.random((30, 20)).astype(np.float32) ** 8, tol=1e-6)[2] % 10 == 1


@pytest.mark.parametrize(
    "recipe, flip, erasing, gray, replacement",
    [
        ("agw", "none", "torchvision", 0.0, 1),
        ("otla", "none", "torchvision", 0.0, 1),
        ("pclhd", "mean_of_l2", "channel", 0.5, 0),
        ("mult", "mean_of_l2", "channel", 0.5, 0),
        ("experts", "mean", "channel", 0.5, 0),
    ],
)
def test_each_packaged_recipe_resolves_to_its_released_pipeline(
    synth_root, tmp_path, recipe, flip, erasing, gray, replacement
):
    from vitool.engine.config import load_config
    from vitool.engine.trainer import Engine

    small = {"root": str(synth_root["sysu"]), "pretrained": "none", "height": 64, "width": 32, "workers": 0}
    engine = Engine(load_config(recipe, small), tmp_path / "run", log=lambda _: None)
    cfg = engine.config
    assert (cfg.test_flip, cfg.erasing_style, cfg.infrared_channel_gray, cfg.sampler_replacement) == (
        flip, erasing, gray, replacement,
    )  # fmt: skip
    assert cfg.to_dict()["test_flip"] == flip  # what config.toml records
    assert cfg.sampler_style == ("gallery" if recipe == "pclhd" else "identity")  # PCLHD's own sampler
    assert cfg.erasing == (0.0 if recipe == "agw" else 0.5)  # AGW erases nothing; the others at 0.5
    assert (engine.model.config.test_flip, engine.model.config.test_l2) == (flip, flip != "none")
    infrared_steps = [type(t).__name__ for t in engine.train_set.transform.transforms]
    assert ("ChannelAdapGray" in infrared_steps) == (gray > 0)
    own = Engine(load_config(recipe, {**small, "test_flip": "none"}), tmp_path / "own", log=lambda _: None)
    assert own.model.config.test_flip == "none" and not own.model.config.test_l2  # one key away


def test_linear_transform_rescales_rectangles_until_some_pixel_is_nearly_dark():
    from vitool.data.transforms import LinearTransform

    image = torch.rand(3, 64, 32) * 0.9 + 0.05
    for seed in range(20):
        torch.manual_seed(seed)
        out = LinearTransform(1.0)(image)
        factor = out / image  # every pixel is its input times the product of its rectangles' factors
        assert factor.min() <= 1e-6 * 1.01 and (out >= 0).all()
    assert torch.equal(LinearTransform(0.0)(image), image) and image.min() >= 0.05  # the input is untouched


def test_mult_trains_its_dcl_stage_with_the_released_stronger_augmentation(synth_root, tmp_path):
    from vitool.engine.trainer import Engine
    from vitool.methods.contract import EpochLabels

    config = tiny(synth_root["sysu"], method="mult", epochs=4, dcl_epochs=2)
    engine = Engine(config, tmp_path / "run", log=lambda _: None)
    assert engine.config.strong_augmentation_epochs == 2  # the method's: its DCL epochs
    plan = EpochLabels(np.array([s.pid for s in engine.train_samples]))

    def steps(epoch):
        engine.build_loader(epoch, plan)
        infrared, visible = engine.train_set.transform, engine.train_set.visible_transform
        return [type(t).__name__ for t in infrared.transforms], type(visible).__name__

    infrared, visible = steps(1)
    assert "ColorJitter" in infrared and "ChannelAdapGray" in infrared and visible == "RandomChoice"
    jittered = engine.train_set.visible_transform.transforms[1]  # released: jitter on colour, exchange last
    assert [type(t).__name__ for t in jittered.transforms] == ["Compose", "TensorChannelExchange"]
    infrared, visible = steps(2)  # the cross stage: the run's own augmentation
    assert "ColorJitter" not in infrared and "ChannelAdapGray" in infrared and visible == "Compose"
    dcl = Engine(tiny(synth_root["sysu"], method="dcl"), tmp_path / "dcl", log=lambda _: None)
    assert dcl.config.strong_augmentation_epochs == 0  # only where a recipe asks (mult.toml, demo-mult.toml)


def test_a_stage_can_start_from_the_previous_stages_best_held_out_model(synth_root, tmp_path):
    from vitool.engine.config import load_config
    from vitool.engine.trainer import Engine
    from vitool.models.checkpoint import save_checkpoint

    lines = []
    config = tiny(synth_root["sysu"], method="experts", epochs=3, experts_stage1_epochs=2, stage_start="best")
    engine = Engine(config, tmp_path / "run", log=lines.append)
    seen, labels = {}, engine.method.epoch_labels

    def spy(context, epoch):  # the weights each epoch's labels are built from
        seen[epoch] = {k: v.clone() for k, v in engine.model.state_dict().items()}
        if epoch == 1:  # the model after epoch 1 is stage one's best: no later held-out score beats it
            save_checkpoint(tmp_path / "run" / "best.pt", engine.model, engine.state(0))
            engine.best_rank1 = float("inf")
        return labels(context, epoch)

    engine.method.epoch_labels = spy
    engine.run()
    assert any(line.startswith("epoch 3: the stage starts from best.pt") for line in lines)
    for key, value in seen[1].items():  # stage two starts from that model, not from the end of epoch 2
        torch.testing.assert_close(seen[2][key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="stage_start.*val_ids"):
        load_config(None, {"stage_start": "best", "val_ids": 0})


def test_pclhds_sampler_takes_every_cluster_once_per_pass_and_positives_from_other_cameras():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 20)  # 10 clusters of 20 images, over cameras 1-4; cluster 9 on one camera
    cameras = np.concatenate([rng.integers(1, 5, 180), np.full(20, 3)])
    kwargs = dict(ir_offset=len(labels), ids=4, per_id=6, seed=0, batches=10, independent=True)
    sampler = CrossModalIdentitySampler(labels, labels, cameras=np.concatenate([cameras, cameras]), **kwargs)
    batches = [np.array(b[:24]) for b in sampler]  # the visible half
    for start in (0, 2, 4, 6, 8):  # each pass: two batches of 4 clusters, the 2 left over dropped
        seen = [labels[g[0]] for b in batches[start : start + 2] for g in np.split(b, 4)]
        assert len(set(seen)) == 8
    for batch in batches:
        for group in np.split(batch, 4):
            anchor, rest = group[0], group[1:]
            if labels[anchor] != 9:  # positives from the anchor's other cameras, none repeated
                assert (cameras[rest] != cameras[anchor]).all() and len(set(rest)) == 5
            else:  # one camera: the cluster's other images
                assert anchor not in rest and len(set(rest)) == 5

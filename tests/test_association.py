"""Clustering and association on features whose right answer is known."""

import json

import numpy as np
import pytest
from scipy.special import logsumexp

from vitool.assign import assign
from vitool.assign.hungarian import match_centres
from vitool.assign.ot import _log_domain, _plain, sinkhorn_equipartition
from vitool.cluster import ClusterConfig, cluster_labels, knn
from vitool.cluster.jaccard import jaccard_distance
from vitool.cluster.reference import jaccard_dense
from vitool.errors import VitoolError
from vitool.evaluation.diagnostics import label_diagnostics
from vitool.io import FeatureSet, LabelSet, make_provenance, read_labels, write_features, write_labels

from .conftest import assign_cli, identity_features, run_cli


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sparse_jaccard_equals_the_dense_reference():
    feats, _, _ = identity_features(ids=15, per_vis=20, per_ir=0, noise=0.8, seed=1)  # overlapping identities
    feats = unit(feats)
    rank = knn(feats, 30, "cpu")
    sparse = jaccard_distance(feats, rank, k1=30, k2=6)
    dense = jaccard_dense(feats, rank, k1=30, k2=6)
    full = np.ones_like(dense)
    coo = sparse.tocoo()
    full[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(full, dense, atol=1e-5)
    assert coo.nnz == int((dense < 1).sum())  # exactly the pairs below 1 are stored


def test_symmetric_knn_finds_the_exact_search_neighbours(monkeypatch):
    """The CPU search multiplies each block of rows with the rows from its own on only; with blocks of
    64 rows (many blocks, the last one short) it must find what faiss's full exact search finds."""
    import faiss

    import vitool.cluster as cluster

    rng = np.random.default_rng(3)
    feats = unit(rng.normal(size=(300, 16)).astype(np.float32))
    monkeypatch.setattr(cluster, "KNN_BLOCK_ELEMENTS", 64 * 300)
    rank, sim = knn(feats, 12, "cpu", return_similarity=True)
    index = faiss.IndexFlatIP(16)
    index.add(feats)
    exact_sim, exact_rank = index.search(feats, 12)
    np.testing.assert_array_equal(rank, exact_rank)  # no ties in random features: the same order too
    np.testing.assert_allclose(sim, exact_sim, atol=1e-5)
    np.testing.assert_allclose(sim, (feats[:, None, :] * feats[rank]).sum(-1), atol=1e-5)  # of these pairs
    feats_id, _, _ = identity_features(ids=15, per_vis=20, per_ir=0, noise=0.8, seed=1)
    feats_id = unit(feats_id)
    rank, sim = knn(feats_id, 30, "cpu", return_similarity=True)
    reused = jaccard_distance(feats_id, rank, k1=30, k2=6, similarity=sim)  # the search's products reused
    computed = jaccard_distance(feats_id, rank, k1=30, k2=6)
    assert reused.nnz == computed.nnz and abs(reused - computed).max() < 1e-5


def test_jaccard_with_samples_outside_their_own_neighbours():
    """Ten identical features and k1 5: half of them are not among their own nearest 5, so their
    reciprocal sets are empty; the sparse computation must neither fail nor differ from the plain one."""
    rng = np.random.default_rng(0)
    feats = unit(rng.normal(size=(40, 8)).astype(np.float32))
    feats[:10] = feats[0]
    rank = knn(feats, 5, "cpu")
    assert not all(i in rank[i, :5] for i in range(10))
    sparse, dense = jaccard_distance(feats, rank, k1=5, k2=2), jaccard_dense(feats, rank, k1=5, k2=2)
    full = np.ones_like(dense)
    coo = sparse.tocoo()
    full[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(full, dense, atol=1e-5)


def test_well_separated_identities_are_recovered_by_every_method():
    feats, pid, modality = identity_features()
    labels = cluster_labels(feats, modality, ClusterConfig())
    diag = label_diagnostics(pid, modality, labels)
    assert diag["visible_labels"] == 12 and diag["infrared_labels"] == 12 and diag["outlier_ratio"] == 0
    assert diag["pair_precision"] == 1.0  # per-modality clusters are pure ...
    assert diag["cross_modal_accuracy"] == 0.0  # ... and not yet linked across modalities
    for method in ("ot", "hungarian"):
        result = assign(method, feats, modality, labels)
        after = label_diagnostics(pid, modality, result.label)
        assert after["ari"] == pytest.approx(1.0) and after["cross_modal_accuracy"] == 1.0, method


def test_kmeans_per_modality_gives_distinct_ids():
    feats, pid, modality = identity_features()
    labels = cluster_labels(feats, modality, ClusterConfig(method="kmeans", k=12))
    assert not set(labels[modality == 0]) & set(labels[modality == 1])
    diag = label_diagnostics(pid, modality, labels)
    assert diag["visible_ari"] > 0.9 and diag["infrared_ari"] > 0.9


def test_ot_is_balanced_on_equal_mass_classes():
    rng = np.random.default_rng(0)
    log_p = np.log(rng.dirichlet(np.ones(8) * 0.3, size=400))  # peaked, unbalanced predictions
    best, confidence, _ = sinkhorn_equipartition(log_p, lam=25.0)
    counts = np.bincount(best, minlength=8)
    assert counts.min() >= 40 and counts.max() <= 60  # equipartition: 50 each up to the entropic slack
    assert np.bincount(np.argmax(log_p, axis=1), minlength=8).max() > counts.max()  # argmax alone is not
    assert (confidence > 0).all() and (confidence <= 1).all()


def test_log_domain_sinkhorn_follows_the_plain_iterates():
    rng = np.random.default_rng(1)
    log_p = np.log(rng.dirichlet(np.ones(6), size=300))
    log_s = 25.0 * log_p.T
    alpha, beta, it = _plain(np.exp(log_s), 0.1)
    log_alpha, log_beta, it_log = _log_domain(log_s, 0.1)
    assert it == it_log
    np.testing.assert_allclose(np.log(alpha), log_alpha, rtol=1e-9, atol=1e-9)


def test_sinkhorn_whose_scalings_overflow_takes_the_log_domain():
    """Very peaked predictions (logits at temperature 0.005, lambda 25): the plain scalings overflow
    float64, and the answer must be the log-domain one, without a warning."""
    logits = np.random.default_rng(2).normal(size=(200, 10)) / 0.005
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    log_s = 25.0 * log_p.T
    alpha, _, _ = _plain(np.exp(log_s), 0.1)
    assert not np.isfinite(alpha).all()  # the case under test
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        best, confidence, _ = sinkhorn_equipartition(log_p, 25.0, solver="dense")
    log_alpha, _, _ = _log_domain(log_s, 0.1)
    np.testing.assert_array_equal(best, np.argmax(log_alpha[:, None] + log_s, axis=0))
    assert np.isfinite(confidence).all() and np.bincount(best, minlength=10).min() >= 15


def test_equipartition_converges_to_pots_entropic_transport_plan():
    """An independent check of the iteration itself: run to a tight tolerance, OTLA's equipartition is
    the entropic OT plan between uniform samples and uniform classes with cost -log p and regularisation
    1 / lambda, which POT solves with its own (log-domain) Sinkhorn."""
    import ot

    rng = np.random.default_rng(4)
    log_p = np.log(rng.dirichlet(np.ones(7) * 0.5, size=350))
    best, confidence, _ = sinkhorn_equipartition(log_p, lam=25.0, tol=1e-10)
    n, k = log_p.shape
    plan = ot.sinkhorn(
        np.full(n, 1 / n), np.full(k, 1 / k), -log_p, reg=1 / 25.0, method="sinkhorn_log", numItermax=100_000,
        stopThr=1e-13,
    )  # fmt: skip
    np.testing.assert_array_equal(best, plan.argmax(axis=1))
    np.testing.assert_allclose(confidence, plan.max(axis=1) / plan.sum(axis=1), rtol=1e-6)


def test_hungarian_gives_every_cluster_a_partner_beyond_twice_the_other_side():
    rng = np.random.default_rng(0)
    small = unit(rng.normal(size=(3, 8)))
    big = unit(np.repeat(small, 3, axis=0) + 0.05 * rng.normal(size=(9, 8)))  # 3x the clusters
    partner, rounds = match_centres(big, small)
    np.testing.assert_array_equal(partner, np.repeat(np.arange(3), 3))
    assert rounds.max() == 3 and (rounds == 1).sum() == 3


def test_association_errors(tmp_path):
    feats, pid, modality = identity_features()
    labels = np.where(modality == 0, pid, -1)
    with pytest.raises(VitoolError, match="every infrared sample is an outlier"):
        assign("hungarian", feats, modality, labels)
    assert (assign("ot", feats, modality, labels).label >= 0).all()  # ot reads visible labels only
    with pytest.raises(VitoolError, match="has no infrared samples"):
        assign("hungarian", feats[modality == 0], modality[modality == 0], pid[modality == 0])
    few_ir = np.r_[np.flatnonzero(modality == 0), np.flatnonzero(modality == 1)[:5]]
    with pytest.raises(VitoolError, match="12 visible classes for 5 infrared samples"):
        assign("ot", feats[few_ir], modality[few_ir], pid[few_ir] + 100 * modality[few_ir])
    with pytest.raises(VitoolError, match="exceeds"):
        cluster_labels(feats, modality, ClusterConfig(method="kmeans", k=1000))


def _files(tmp_path):
    feats, pid, modality = identity_features()
    paths = np.array([f"img/{i:04d}.jpg" for i in range(len(pid))], dtype=object)
    fs = FeatureSet(feats, paths, pid, np.where(modality == 0, 1, 3), modality)
    write_features(tmp_path / "f.h5", fs, make_provenance({}))
    return fs


def test_cli_cluster_then_assign(tmp_path):
    fs = _files(tmp_path)
    res = run_cli("cluster", tmp_path / "f.h5", "-o", tmp_path / "c.h5", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["diagnostics"]["visible_labels"] == 12 and out["diagnostics"]["pair_precision"] == 1.0
    clusters = read_labels(tmp_path / "c.h5")
    assert clusters.path.tolist() == fs.path.tolist() and clusters.intra_label is not None
    assert clusters.attrs["diagnostics"]["infrared_labels"] == 12
    for method in ("ot", "mult", "experts", "hungarian"):
        res = assign_cli(tmp_path / "f.h5", tmp_path / "c.h5", method, tmp_path / f"{method}.h5")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["diagnostics"]["cross_modal_accuracy"] == 1.0
        assigned = read_labels(tmp_path / f"{method}.h5")
        assert assigned.method == method and assigned.attrs["provenance"]["command"].startswith("vitool assign-labels")


def test_cli_labels_must_match_the_features(tmp_path):
    fs = _files(tmp_path)
    other = LabelSet(
        path=np.array([f"x/{i}.jpg" for i in range(len(fs))], dtype=object), modality=fs.modality, label=fs.pid
    )
    write_labels(tmp_path / "other.h5", other, make_provenance({}))
    res = run_cli(
        "assign-labels", tmp_path / "f.h5", "--labels", tmp_path / "other.h5", "--method", "ot", "-o", tmp_path / "o.h5"
    )
    assert res.returncode == 1 and "has no row for" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.h5").exists()


def test_count_priority_selection_finds_a_permuted_diagonal():
    from vitool.assign.experts import count_priority_selection

    perm = np.array([3, 0, 4, 1, 2])
    own = np.repeat(np.arange(5), 4)
    probs = np.full((20, 5), 0.02)
    probs[np.arange(20), perm[own]] = 0.92
    mapping, votes = count_priority_selection(probs, own)
    assert mapping == {i: int(perm[i]) for i in range(5)}
    assert all(votes[(i, int(perm[i]))] == 4 for i in range(5))


def test_conflicting_experts_give_the_three_kinds():
    from vitool.assign.experts import partition

    a = {0: 10, 1: 11, 2: 12, 3: 13}  # visible -> infrared
    b = {10: 0, 11: 5, 14: 2, 15: 6}  # infrared -> visible
    kinds = partition(a, b)
    assert kinds["consistent"] == [(0, 10)]
    assert kinds["single"] == [(3, 13), (6, 15)]  # neither end claimed by the other expert
    # (1, 11) and (5, 11) disagree on 11; (2, 12) and (2, 14) disagree on 2: two candidates for visible 2
    assert kinds["contradictory"] == [(1, 11), (2, 12), (2, 14), (5, 11)]


def test_experts_link_unequal_identity_sets_and_keep_fresh_ids():
    feats, pid, modality = identity_features(ids=12)
    keep = ~((modality == 0) & (pid == 0))  # identity 0 is seen by infrared cameras only
    feats, pid, modality = feats[keep], pid[keep], modality[keep]
    intra = np.where(modality == 0, pid, 100 + (pid * 7) % 13)  # infrared ids renumbered: no link survives
    result = assign("experts", feats, modality, intra)
    both = pid > 0
    diag = label_diagnostics(pid[both], modality[both], result.label[both])
    assert diag["cross_modal_accuracy"] == 1.0  # every shared identity found its partner ...
    assert result.extra["pairs_consistent"].shape[0] == 11
    ir_only = result.label[(modality == 1) & (pid == 0)]
    assert len(set(ir_only)) == 1 and ir_only[0] not in set(result.label[modality == 0])  # ... the rest a fresh id


def test_mult_links_modalities_and_labels_former_outliers():
    feats, pid, modality = identity_features()
    labels = cluster_labels(feats, modality, ClusterConfig())
    labels[::25] = -1  # some outliers
    for space, rows in (("visible", modality == 0), ("infrared", modality == 1)):
        result = assign("mult", feats, modality, labels, space=space)
        assert (result.label >= 0).all() and (result.intra_label >= 0).all()
        diag = label_diagnostics(pid, modality, result.label)
        assert diag["ari"] == pytest.approx(1.0) and diag["cross_modal_accuracy"] == 1.0
        assert set(result.label) <= set(labels[rows & (labels >= 0)])  # one modality's cluster space
        np.testing.assert_allclose(result.soft.sum(axis=1), 1.0, rtol=1e-5)
        assert result.soft.shape[1] == len(result.extra["soft_classes"])


def test_mult_transfer_in_torch_gives_the_numpy_labels():
    """The GPU's code path (torch tensors, a torch CSR product), run here on the CPU: on overlapping
    identities the same Sinkhorn iterations, rounds and labels as the numpy path, values within float32
    rounding."""
    import torch

    from vitool.assign import class_means
    from vitool.assign.mult import _cross_transfer, _homogeneous, _initial_cross
    from vitool.modality import l2_normalise

    feats, _, modality = identity_features(ids=20, noise=0.7, gap=1.0, seed=3)
    labels = cluster_labels(feats, modality, ClusterConfig(eps=0.7))
    f_v, f_r = l2_normalise(feats[modality == 0]), l2_normalise(feats[modality == 1])
    _, c_v = class_means(f_v, labels[modality == 0])
    _, c_r = class_means(f_r, labels[modality == 1])
    rng = np.random.default_rng(0)
    initial = (  # soft starting labels; their values matter only through the fixed point
        rng.dirichlet(np.ones(len(c_v)), len(f_v)).astype(np.float32),
        rng.dirichlet(np.ones(len(c_r)), len(f_r)).astype(np.float32),
        _initial_cross(f_v, c_r),
        _initial_cross(f_r, c_v),
    )
    s_v, s_r = _homogeneous(f_v, 30, 6, "cpu"), _homogeneous(f_r, 30, 6, "cpu")
    args = (f_v, f_r, initial, s_v, s_r, 0.2, 20, 1e-2)
    numpy_out, numpy_it, *numpy_rounds = _cross_transfer(*args)
    torch_out, torch_it, *torch_rounds = _cross_transfer(*args, on=torch.device("cpu"))
    assert (torch_it, torch_rounds) == (numpy_it, numpy_rounds) and numpy_it > 10
    for ours, reference in zip(torch_out, numpy_out, strict=True):
        assert isinstance(ours, np.ndarray)
        np.testing.assert_array_equal(ours.argmax(1), reference.argmax(1))
        np.testing.assert_allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("std", [0.3, 1.0, 5.0, 8.0, 30.0])
def test_stabilized_sinkhorn_gives_the_reference_labels_at_any_sharpness(std):
    """From flat predictions (a dense kernel) to ones whose plain scalings overflow float64 (the reference
    then runs in the log domain): the same iterations, labels and confidences."""
    rng = np.random.default_rng(int(std))
    logits = rng.normal(size=(2000, 60)) * std
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    dense, dense_conf, dense_it = sinkhorn_equipartition(log_p, solver="dense")
    ours, conf, it = sinkhorn_equipartition(log_p)
    np.testing.assert_array_equal(ours, dense)
    np.testing.assert_allclose(conf, dense_conf, rtol=1e-9)
    assert it == dense_it


def test_cluster_accepts_a_single_modality_and_experts_read_stored_classifiers(tmp_path):
    feats, pid, modality = identity_features()
    vis = modality == 0
    fs = FeatureSet(
        feats[vis],
        np.array([f"v/{i}.jpg" for i in range(vis.sum())], dtype=object),
        pid[vis],
        np.ones(vis.sum(), np.int64),
        modality[vis],
    )
    write_features(tmp_path / "vis.h5", fs, make_provenance({}))
    res = run_cli("cluster", tmp_path / "vis.h5", "-o", tmp_path / "c.h5", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["diagnostics"]["visible_labels"] == 12

    # stored experts: each modality's classifier is its identities' centre; the infrared ids are permuted
    intra = np.where(modality == 0, pid, 50 + (pid * 5) % 12)
    experts = {}
    for m, name in ((0, "visible"), (1, "infrared")):
        ids = np.unique(intra[modality == m])
        experts[f"expert_{name}"] = np.stack([unit(feats[(intra == i) & (modality == m)]).mean(0) for i in ids]) * 10
        experts[f"expert_{name}_classes"] = ids
    result = assign("experts", feats, modality, intra, experts=experts)
    assert result.attrs["experts"] == "stored" and result.attrs["consistent_pairs"] == 12
    assert label_diagnostics(pid, modality, result.label)["cross_modal_accuracy"] == 1.0
    with pytest.raises(VitoolError, match="only part of the expert datasets"):
        assign("experts", feats, modality, intra, experts={"expert_visible": experts["expert_visible"]})

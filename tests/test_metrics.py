import numpy as np
import pytest

from vitool.evaluation.metrics import evaluate_ranking
from vitool.evaluation.reference import evaluate_loop
from vitool.modality import l2_normalise


def unit(degrees):
    rad = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32)


@pytest.mark.parametrize("fn", [evaluate_ranking, evaluate_loop])
def test_hand_computed_image_and_identity_cmc(fn):
    # both queries see the gallery in the order of its angles: pids 2, 2, 1, 3, 1
    q, g = unit([0, 0]), unit([10, 20, 30, 40, 50])
    q_pid, g_pid = np.array([1, 3]), np.array([2, 2, 1, 3, 1])
    cams = np.array([1, 1]), np.array([2, 2, 2, 2, 2])
    m = fn(q, g, q_pid, g_pid, *cams, exclusion="none", identity_cmc=False)
    assert m.mAP == pytest.approx(((1 / 3 + 2 / 5) / 2 + 1 / 4) / 2)
    assert m.mINP == pytest.approx((2 / 5 + 1 / 4) / 2)
    np.testing.assert_allclose(m.cmc[:5], [0, 0, 0.5, 1, 1])
    ident = fn(q, g, q_pid, g_pid, *cams, exclusion="none", identity_cmc=True)
    np.testing.assert_allclose(ident.cmc[:4], [0, 0.5, 1, 1])  # deduplicated ranking: 2, 1, 3
    assert ident.mAP == pytest.approx(m.mAP)  # AP is always on the non-deduplicated list


@pytest.mark.parametrize("fn", [evaluate_ranking, evaluate_loop])
def test_sysu_rule_cam3_skips_cam2_whatever_the_identity(fn):
    q, g = unit([0, 0, 0]), unit([10, 20, 30])
    q_pid, q_cam = np.array([1, 1, 9]), np.array([3, 6, 6])
    g_pid, g_cam = np.array([1, 2, 1]), np.array([2, 1, 1])
    m = fn(q, g, q_pid, g_pid, q_cam, g_cam, exclusion="sysu", identity_cmc=True)
    assert (m.valid_queries, m.skipped_queries) == (2, 1)  # pid 9 has no true match and is skipped
    assert m.mAP == pytest.approx((1 / 2 + (1 + 2 / 3) / 2) / 2)
    assert m.mINP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m.cmc[0] == pytest.approx(0.5) and m.cmc[1] == pytest.approx(1.0)


@pytest.mark.parametrize("fn", [evaluate_ranking, evaluate_loop])
def test_same_pid_cam_rule_ignores_unknown_cameras(fn):
    q, g = unit([0]), unit([10, 20])
    same = fn(q, g, np.array([1]), np.array([1, 1]), np.array([4]), np.array([4, 5]), "same_pid_cam")
    assert same.mAP == pytest.approx(1.0) and same.cmc[0] == 1.0  # only the cam5 match is left
    unknown = fn(q, g, np.array([1]), np.array([1, 1]), np.array([-1]), np.array([-1, -1]), "same_pid_cam")
    assert unknown.mAP == pytest.approx(1.0) and unknown.mINP == pytest.approx(1.0)  # nothing removed


@pytest.mark.parametrize(
    "rule, identity", [("none", False), ("sysu", True), ("same_pid_cam", True), ("same_pid_cam", False)]
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_equals_the_reference_loop(rule, identity, seed):
    rng = np.random.default_rng(seed)
    nq, ng = 300, 220
    q, g = l2_normalise(rng.normal(size=(nq, 24))), l2_normalise(rng.normal(size=(ng, 24)))
    q_pid, g_pid = rng.integers(0, 40, nq), rng.integers(0, 45, ng)
    if rule == "sysu":
        q_cam, g_cam = rng.choice([3, 6], nq), rng.choice([1, 2, 4, 5], ng)
    else:
        q_cam, g_cam = rng.integers(1, 4, nq), rng.integers(1, 4, ng)
    fast = evaluate_ranking(q, g, q_pid, g_pid, q_cam, g_cam, rule, identity, chunk=37)
    slow = evaluate_loop(q, g, q_pid, g_pid, q_cam, g_cam, rule, identity)
    np.testing.assert_allclose(fast.cmc, slow.cmc, atol=1e-12)
    assert abs(fast.mAP - slow.mAP) < 1e-9 and abs(fast.mINP - slow.mINP) < 1e-9
    assert fast.valid_queries == slow.valid_queries


def test_small_gallery_caps_the_curve_like_the_reference():
    q, g = unit([0]), unit([10, 20, 30])
    m = evaluate_ranking(q, g, np.array([1]), np.array([2, 1, 3]), np.array([1]), np.array([2, 2, 2]))
    assert m.cmc[1] == 1.0 and m.cmc[19] == 1.0 and m.cmc[0] == 0.0


def test_both_identity_counting_paths_agree():
    from vitool.evaluation.metrics import _distinct_identities_above

    rng = np.random.default_rng(3)
    g_pid = rng.integers(0, 30, 200)
    above = rng.random((200, 64)) < 0.1
    onehot = _distinct_identities_above(g_pid)(above)
    reduceat = _distinct_identities_above(g_pid, onehot_limit=0)(above)
    expected = [len(set(g_pid[above[:, b]])) for b in range(64)]
    np.testing.assert_array_equal(onehot, expected)
    np.testing.assert_array_equal(reduceat, expected)


def test_shared_products_give_the_per_trial_loop_numbers(synth_root):
    from vitool.evaluation.evaluate import evaluate_protocols
    from vitool.evaluation.protocols import ProtocolSpec, build_trials

    from .conftest import featureset_of

    fs = featureset_of("sysu", synth_root["sysu"], seed=4)
    specs = [ProtocolSpec("sysu", mode="all", trials=4), ProtocolSpec("sysu", mode="indoor", trials=4)]
    emb = l2_normalise(fs.features)
    for spec, result in zip(specs, evaluate_protocols(fs, specs), strict=True):
        loops = [
            evaluate_loop(
                emb[t.query],
                emb[t.gallery],
                fs.pid[t.query],
                fs.pid[t.gallery],
                fs.cam[t.query],
                fs.cam[t.gallery],
                "sysu",
                True,
            )
            for t in build_trials(spec, fs.path, fs.pid, fs.cam, fs.modality)
        ]
        assert result["mAP"] == pytest.approx(100 * np.mean([m.mAP for m in loops]), abs=1e-9)
        assert result["mINP"] == pytest.approx(100 * np.mean([m.mINP for m in loops]), abs=1e-9)
        np.testing.assert_allclose(result["cmc"], 100 * np.mean([m.cmc for m in loops], axis=0), atol=1e-9)


def test_ties_count_against_the_query_and_never_inflate():
    q, g = unit([0, 0]), unit([0, 0, 0, 0])  # a degenerate model: every score equal
    m = evaluate_ranking(q, g, np.array([1, 2]), np.array([1, 2, 3, 1]), np.array([1, 1]), np.array([2] * 4))
    assert m.mAP <= 1 and m.mINP <= 1
    assert m.cmc[0] == 0.0  # a tied wrong identity is ranked first
    assert m.mAP == pytest.approx(((1 / 4 + 2 / 4) / 2 + 1 / 4) / 2)
    ident = evaluate_ranking(
        q, g, np.array([1, 2]), np.array([1, 2, 3, 1]), np.array([1, 1]), np.array([2] * 4), identity_cmc=True
    )
    np.testing.assert_allclose(ident.cmc[:3], [0, 0, 1])

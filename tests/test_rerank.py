"""k-reciprocal re-ranking against a literal dense transcription of the published algorithm."""

import json

import numpy as np
import pytest

from vitool.evaluation.rerank import Rerank, rerank_distance
from vitool.io import write_features
from vitool.modality import l2_normalise

from .conftest import random_featureset, run_cli


def literal_rerank(q: np.ndarray, g: np.ndarray, k1=20, k2=6, lam=0.3) -> np.ndarray:
    """Zhong et al., CVPR 2017, step by step with dense N x N matrices, as the paper writes it."""
    x = np.concatenate([q, g]).astype(np.float64)
    n, nq = len(x), len(q)
    dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    rank = np.argsort(dist, axis=1)

    def k_reciprocal(i, k):
        return np.array([j for j in rank[i, : k + 1] if i in rank[j, : k + 1]], dtype=int)

    v = np.zeros((n, n))
    for i in range(n):
        r = k_reciprocal(i, k1)
        expanded = set(r.tolist())
        for c in r:
            rc = k_reciprocal(c, int(np.around(k1 / 2)))
            if len(set(rc.tolist()) & set(r.tolist())) > 2 / 3 * len(rc):
                expanded |= set(rc.tolist())
        cols = sorted(expanded)
        w = np.exp(-dist[i, cols])
        v[i, cols] = w / w.sum()
    if k2 > 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.array(
        [[1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum() for j in range(n)] for i in range(nq)]
    )
    return ((1 - lam) * jaccard + lam * dist[:nq])[:, nq:]


@pytest.mark.parametrize("k1, k2, lam", [(20, 6, 0.3), (5, 1, 0.0), (8, 3, 0.7)])
def test_rerank_equals_the_literal_algorithm(k1, k2, lam):
    rng = np.random.default_rng(k1)
    centres = rng.normal(size=(6, 16))
    q = l2_normalise(centres[rng.integers(0, 6, 25)] + 0.6 * rng.normal(size=(25, 16)))
    g = l2_normalise(centres[rng.integers(0, 6, 40)] + 0.6 * rng.normal(size=(40, 16)))
    ours = rerank_distance(q, g, Rerank(k1, k2, lam))
    expected = literal_rerank(q, g, k1, k2, lam)
    assert ours.shape == (25, 40)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
    np.testing.assert_array_equal(np.argsort(ours, axis=1)[:, :5], np.argsort(expected, axis=1)[:, :5])


def test_evaluate_rerank_flag(tmp_path):
    rng = np.random.default_rng(0)
    fs = random_featureset(n_vis=60, n_ir=40, dim=8, n_ids=5)
    fs.features = (np.eye(5)[fs.pid] * 2 + rng.normal(size=(100, 5))).astype(np.float32)  # identities show
    write_features(tmp_path / "f.h5", fs, {"command": "test"})
    plain = json.loads(run_cli("evaluate", tmp_path / "f.h5", "--protocol", "generic", "--json").stdout)
    res = run_cli(
        "evaluate", tmp_path / "f.h5", "--protocol", "generic", "--json", "--rerank", "--k1", "6", "--k2", "2"
    )
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["reranked"] == {"k1": 6, "k2": 2, "lambda": 0.3} and plain["reranked"] is False
    assert out["provenance"]["config"]["rerank"] == {"k1": 6, "k2": 2, "lambda": 0.3}
    assert out["mAP"] != plain["mAP"] and out["mAP"] > 30
    line = run_cli("evaluate", tmp_path / "f.h5", "--protocol", "generic", "--rerank").stdout
    assert "reranked (k1 20, k2 6, lambda 0.3)" in line

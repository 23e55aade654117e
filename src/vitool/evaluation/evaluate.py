"""Score a features file under a protocol: trials, metrics, the mean over trials, and a CMC plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitool.errors import VitoolError
from vitool.evaluation.metrics import MAX_RANK, product_source, rank_metrics
from vitool.evaluation.protocols import ProtocolSpec, Trial, build_trials, check_protocol_fits
from vitool.evaluation.rerank import Rerank, rerank_distance
from vitool.io import FeatureSet
from vitool.modality import l2_normalise

SHARED_BUDGET = 1 << 28  # floats (1 GiB) for the similarity matrix shared across trials
SUMMARY_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def evaluate_features(
    fs: FeatureSet,
    spec: ProtocolSpec,
    feature: str = "features",
    device: str = "cpu",
    where: str | Path = "features",
    rerank: Rerank | None = None,
) -> dict[str, Any]:
    """Mean and per-trial metrics (percent) of one protocol over a features file."""
    return evaluate_protocols(fs, [spec], feature, device, where, rerank)[0]


def score(
    fs: FeatureSet,
    spec: ProtocolSpec,
    feature: str = "features",
    device: str = "cpu",
    where: str | Path = "features",
    rerank: Rerank | None = None,
    cross_dataset: bool = False,
) -> dict[str, Any]:
    """``evaluate_features`` behind the checks every caller owes it: the protocol fits the features'
    dataset and split (``cross_dataset`` the deliberate exception, recorded in the results), and
    ``device`` is cpu (or auto: cpu without importing torch) or a visible GPU."""
    check_protocol_fits(fs.attrs.get("dataset"), spec.protocol, str(where), cross_dataset, fs.attrs.get("split"))
    if device not in ("auto", "cpu", "cuda"):
        raise VitoolError("device", f"expected auto, cpu or cuda, got {device!r}")
    if device == "cuda":
        from vitool.devices import resolve_device

        device = str(resolve_device("cuda"))  # one clear line when no GPU is visible
    results = evaluate_features(fs, spec, feature, "cpu" if device == "auto" else device, where, rerank)
    if cross_dataset:
        results["cross_dataset"] = {"features_dataset": fs.attrs.get("dataset"), "protocol": spec.protocol}
    return results


def evaluate_protocols(
    fs: FeatureSet,
    specs: list[ProtocolSpec],
    feature: str = "features",
    device: str = "cpu",
    where: str | Path = "features",
    rerank: Rerank | None = None,
) -> list[dict[str, Any]]:
    """Several protocols over one file (e.g. SYSU all and indoor), sharing the similarity products.
    With ``rerank``, every trial's probe + gallery distances are k-reciprocal re-ranked first."""
    emb = fs.embedding(feature, where)
    per_spec = [build_trials(spec, fs.path, fs.pid, fs.cam, fs.modality, str(where)) for spec in specs]
    shared = None if rerank else _shared_products(emb, [t for trials in per_spec for t in trials], device)
    return [
        _score(fs, spec, trials, emb, shared, feature, device, where, rerank)
        for spec, trials in zip(specs, per_spec, strict=True)
    ]


def _score(fs, spec, trials, emb, shared, feature, device, where, rerank=None) -> dict[str, Any]:
    results = []
    for trial in trials:
        if rerank is not None:  # a similarity is a negated distance; the source is gallery-major
            distance = rerank_distance(l2_normalise(emb[trial.query]), l2_normalise(emb[trial.gallery]), rerank)
            source = lambda lo, hi, d=distance: -d[lo:hi].T  # noqa: E731
        elif shared is not None:
            source = _rows_of(*shared, trial.gallery)
        else:
            source = product_source(l2_normalise(emb[trial.query]), l2_normalise(emb[trial.gallery]), device)
        metrics = rank_metrics(
            source,
            fs.pid[trial.query],
            fs.pid[trial.gallery],
            fs.cam[trial.query],
            fs.cam[trial.gallery],
            trial.exclusion,
            trial.identity_cmc,
        )
        if metrics.valid_queries == 0:
            raise VitoolError(
                where,
                f"trial {trial.number}: no query identity appears in the gallery",
                "check that the file holds the test split of both modalities and the --protocol",
            )
        results.append(
            {"trial": trial.number, "queries": len(trial.query), "gallery": len(trial.gallery), **metrics.as_dict()}
        )
    summary: dict[str, Any] = {key: float(np.mean([r[key] for r in results])) for key in SUMMARY_KEYS}
    summary["cmc"] = np.mean([r["cmc"] for r in results], axis=0).tolist()
    return {
        **summary,
        "protocol": spec.protocol,
        "mode": spec.mode if spec.protocol == "sysu" else None,
        "shot": spec.shot if spec.protocol in ("sysu", "llcm") else None,
        "direction": spec.resolved_direction(),
        "deen_swap": spec.deen_swap if spec.protocol == "llcm" else None,
        "feature": feature,
        "reranked": rerank.as_dict() if rerank else False,
        "trials": results,
    }


def _shared_products(
    emb: np.ndarray, trials: list[Trial], device: str, budget: int = SHARED_BUDGET
) -> tuple[np.ndarray, np.ndarray] | None:
    """Queries x the union of all trial galleries, computed once when every trial has the same queries.

    Trials (and SYSU's all/indoor modes) redraw the gallery but keep the queries, so one product
    serves all of them; it is the dominant cost with 2048-d features. Skipped (None) when there is
    a single trial or it would exceed ``budget`` floats.
    """
    query = trials[0].query
    if len(trials) < 2 or any(not np.array_equal(t.query, query) for t in trials):
        return None
    union = np.unique(np.concatenate([t.gallery for t in trials]))
    if len(query) * len(union) > budget:
        return None
    products = product_source(l2_normalise(emb[query]), l2_normalise(emb[union]), device)(0, len(query))
    return union, products  # [U, Q]: one row per gallery image


def _rows_of(union: np.ndarray, products: np.ndarray, gallery: np.ndarray):
    """A similarity source for one trial's gallery, cut from the shared [U, Q] products."""
    rows = np.searchsorted(union, gallery)
    return lambda lo, hi: products[rows, lo:hi]


def plot_cmc(results: dict[str, Any], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = np.arange(1, MAX_RANK + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    n_trials = len(results["trials"])
    for i, trial in enumerate(results["trials"] if n_trials > 1 else []):
        ax.plot(ranks, trial["cmc"], color="0.8", lw=0.8, label="each trial" if i == 0 else None)
    summary = f"R1 {results['rank1']:.1f}  mAP {results['mAP']:.1f}  mINP {results['mINP']:.1f}"
    ax.plot(
        ranks,
        results["cmc"],
        marker="o",
        ms=3,
        lw=1.8,
        label=f"mean of {n_trials} trials: {summary}" if n_trials > 1 else summary,
    )
    ax.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100), xlim=(1, MAX_RANK), title=title)
    ax.set_xticks([1, 5, 10, 15, 20])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)

"""Score a features file under a protocol: trials, metrics, the mean over trials, and a CMC plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vitool.errors import VitoolError
from vitool.evaluation.metrics import MAX_RANK, evaluate_ranking, l2_normalise
from vitool.evaluation.protocols import ProtocolSpec, build_trials
from vitool.io import FeatureSet

SUMMARY_KEYS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def evaluate_features(
    fs: FeatureSet, spec: ProtocolSpec, feature: str = "features", device: str = "cpu", where: str | Path = "features"
) -> dict[str, Any]:
    """Mean and per-trial metrics (percent) of one protocol over a features file."""
    if feature == "features":
        emb = fs.features
    elif feature == "features_pre_bn" and fs.features_pre_bn is not None:
        emb = fs.features_pre_bn
    else:
        raise VitoolError(where, f"has no dataset '{feature}'", "use --feature features")
    emb = l2_normalise(emb)
    trials = build_trials(spec, fs.path, fs.pid, fs.cam, fs.modality, str(where))
    results = []
    for trial in trials:
        metrics = evaluate_ranking(
            emb[trial.query],
            emb[trial.gallery],
            fs.pid[trial.query],
            fs.pid[trial.gallery],
            fs.cam[trial.query],
            fs.cam[trial.gallery],
            trial.exclusion,
            trial.identity_cmc,
            device=device,
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
        "trials": results,
    }


def plot_cmc(results: dict[str, Any], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = np.arange(1, MAX_RANK + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for trial in results["trials"] if len(results["trials"]) > 1 else []:
        ax.plot(ranks, trial["cmc"], color="0.8", lw=0.8)
    ax.plot(
        ranks,
        results["cmc"],
        marker="o",
        ms=3,
        lw=1.8,
        label=f"mean: R1 {results['rank1']:.1f}  mAP {results['mAP']:.1f}  mINP {results['mINP']:.1f}",
    )
    ax.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100), xlim=(1, MAX_RANK), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")
    plt.close(fig)

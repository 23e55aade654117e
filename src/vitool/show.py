"""Pictures: of a features file, cross-modal rank lists and a 2-D embedding map; of a `vitool compare`
result, the paired differences per seed with their intervals.

Rank lists follow the protocol's first trial exactly (its query set, its sampled gallery, its
exclusion rule), so what a picture shows is what `vitool evaluate` scored. The embedding map is t-SNE
(scikit-learn) up to ``TSNE_LIMIT`` points and PCA above, coloured by identity or by pseudo label and
shaped by modality, like the papers' figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vitool.errors import VitoolError
from vitool.evaluation.metrics import exclusion_mask
from vitool.evaluation.protocols import ProtocolSpec, build_trials
from vitool.io import FeatureSet
from vitool.modality import INFRARED, MODALITY_NAMES, VISIBLE, l2_normalise

TSNE_LIMIT = 5000


@dataclass
class RankList:
    query: int  # row of the features file
    gallery: np.ndarray  # rows of the top-k gallery images, best first
    match: np.ndarray  # bool per shown gallery image
    ap: float  # average precision of the query over the whole (kept) gallery
    why: str  # "best AP", "worst AP", "random", "chosen"


def rank_lists(
    fs: FeatureSet,
    spec: ProtocolSpec,
    top: int = 10,
    random_queries: int = 4,
    best: int = 0,
    worst: int = 0,
    chosen: list[str] | None = None,
    seed: int = 0,
    where: str = "features",
) -> list[RankList]:
    """The top-``top`` gallery rows of the chosen, random, best-AP and worst-AP queries of trial 0."""
    trial = build_trials(spec, fs.path, fs.pid, fs.cam, fs.modality, where)[0]
    q, g = trial.query, trial.gallery
    sim = l2_normalise(fs.features[q]) @ l2_normalise(fs.features[g]).T
    removed = exclusion_mask(trial.exclusion, fs.pid[q], fs.cam[q], fs.pid[g], fs.cam[g])
    if removed is not None:
        sim[removed] = -np.inf
    order = np.argsort(-sim, axis=1, kind="stable")
    kept = np.take_along_axis(sim, order, axis=1) > -np.inf
    match = (fs.pid[g][order] == fs.pid[q][:, None]) & kept
    hits = np.cumsum(match, axis=1)
    positions = np.arange(1, match.shape[1] + 1)
    count = match.sum(axis=1)
    ap = np.where(count > 0, (match * hits / positions).sum(axis=1) / np.maximum(count, 1), np.nan)
    picks: list[tuple[int, str]] = []
    if chosen:
        index = {p: i for i, p in enumerate(fs.path[q].tolist())}
        for path in chosen:
            if path not in index:
                raise VitoolError(where, f"'{path}' is not a query of this protocol", "pick a query image's path")
            picks.append((index[path], "chosen"))
    valid = np.flatnonzero(count > 0)
    ranked = valid[np.argsort(-ap[valid], kind="stable")]
    picks += [(int(i), "best AP") for i in ranked[:best]]
    picks += [(int(i), "worst AP") for i in ranked[::-1][:worst]]
    rng = np.random.default_rng(seed)
    picks += [(int(i), "random") for i in rng.choice(len(q), min(random_queries, len(q)), replace=False)]
    k = min(top, len(g))
    return [
        RankList(int(q[i]), g[order[i, :k]], match[i, :k], float(ap[i]) if count[i] else float("nan"), why)
        for i, why in picks
    ]


def plot_rank_lists(lists: list[RankList], fs: FeatureSet, root: Path, out: Path, title: str, meta: dict) -> None:
    """One row per query: the query image, then its top-k gallery images framed green (match) or red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vitool.data.images import load_rgb

    if not lists:
        raise VitoolError(None, "no query to show", "ask for --random, --best, --worst or --query")
    cols = 1 + max(len(r.gallery) for r in lists)
    fig, axes = plt.subplots(len(lists), cols, figsize=(1.0 * cols, 2.1 * len(lists)), dpi=100, squeeze=False)
    for row, r in zip(axes, lists, strict=True):
        for ax in row:
            ax.axis("off")
        _image(row[0], load_rgb(root / fs.path[r.query]), "black")
        row[0].set_title(
            f"{r.why}\nid {fs.pid[r.query]} {MODALITY_NAMES[int(fs.modality[r.query])][:3]}"
            + (f" AP {100 * r.ap:.0f}" if r.ap == r.ap else ""),
            fontsize=7,
        )
        for j, (g, hit) in enumerate(zip(r.gallery, r.match, strict=True), start=1):
            _image(row[j], load_rgb(root / fs.path[g]), "#1a9850" if hit else "#d73027")
            row[j].set_title(f"{j}: id {fs.pid[g]}", fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, out, meta)


def _image(ax, img, colour: str) -> None:
    ax.imshow(np.asarray(img))
    ax.axis("on")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)


def embedding_2d(features: np.ndarray, seed: int = 0, method: str = "auto") -> tuple[np.ndarray, str]:
    """2-D coordinates of L2-normalised features: t-SNE up to TSNE_LIMIT points (or asked), else PCA."""
    x = l2_normalise(features.astype(np.float32))
    if method == "auto":
        method = "tsne" if len(x) <= TSNE_LIMIT else "pca"
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(x), "PCA"
    if method != "tsne":
        raise VitoolError(None, f"--method {method}", "use auto, tsne or pca")
    from sklearn.manifold import TSNE

    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x), "t-SNE"


def plot_embedding(
    coords: np.ndarray, colour_by: np.ndarray, modality: np.ndarray, out: Path, title: str, meta: dict
) -> None:
    """Points coloured by identity (or pseudo label; -1 grey), circles visible, triangles infrared."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    classes, index = np.unique(colour_by, return_inverse=True)
    cmap = plt.get_cmap("tab20", max(len(classes), 1))
    colours = np.array([cmap(i % cmap.N) for i in index])
    colours[colour_by < 0] = (0.6, 0.6, 0.6, 0.5)
    for m, marker in ((VISIBLE, "o"), (INFRARED, "^")):
        rows = modality == m
        ax.scatter(*coords[rows].T, c=colours[rows], marker=marker, s=14, linewidths=0, label=MODALITY_NAMES[m])
    ax.legend(fontsize=8, markerscale=1.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_png(fig, out, meta)


def plot_comparison(result: dict[str, Any], out: Path, meta: dict[str, Any]) -> None:
    """Rank-1 and mAP of the first setting, a row per group: with a baseline, each other group's
    difference per seed (dots) and its mean with the 95% interval (bar), against a line at zero, so
    an interval that crosses it is seen at once; without one, each group's mean ± sd."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = result["groups"]
    setting = next(iter(next(iter(groups.values()))["scores"]))
    baseline = result.get("baseline")
    paired = baseline is not None and len(groups) > 1  # else there is nothing to pair: means ± sd
    names = [n for n in groups if n != baseline] if paired else list(groups)
    fig, axes = plt.subplots(1, 2, figsize=(9, 1.2 + 0.45 * len(names)), dpi=110, sharey=True)
    for ax, metric, label in zip(axes, ("rank1", "mAP"), ("Rank-1", "mAP"), strict=True):
        for y, name in enumerate(reversed(names)):
            if paired:
                stat = groups[name]["paired"][setting][metric]
                ax.plot(stat["per_seed"], [y] * len(stat["per_seed"]), "o", color="0.5", markersize=4, zorder=3)
                low, high = stat["ci95"] if stat["ci95"] is not None else (stat["mean"], stat["mean"])
            else:
                stat = groups[name]["scores"][setting][metric]
                low, high = stat["mean"] - (stat["sd"] or 0.0), stat["mean"] + (stat["sd"] or 0.0)
            ax.plot([low, high], [y, y], color="C0", linewidth=2.5)
            ax.plot([stat["mean"]], [y], "D", color="C0")
        if paired:
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlabel(f"{label} - {baseline} ({setting}, points)")
        else:
            ax.set_xlabel(f"{label} ({setting}, %): mean ± sd")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(names)), list(reversed(names)))
    axes[0].set_ylim(-0.6, len(names) - 0.4)
    n = len(next(iter(groups.values()))["runs"])
    what = "paired difference per seed (dots), mean and 95% interval" if paired else "mean ± sd over runs"
    fig.suptitle(f"{result.get('dataset') or result['protocol']}, {n} runs per group: {what}", fontsize=9)
    fig.tight_layout()
    save_png(fig, out, meta)


def save_png(fig, out: Path, meta: dict[str, Any]) -> None:
    """PNG with the provenance in its text chunks (readable with PIL's Image.open(...).text)."""
    import matplotlib.pyplot as plt

    fig.savefig(out, format="png", metadata={"Software": "vitool", "Description": json.dumps(meta)})
    plt.close(fig)

"""The label-file commands: cluster, assign-labels (weak-labels, which reads a dataset, is in data.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitool.cli.common import (
    AssignMethod,
    ClusterMethod,
    Device,
    FeaturesArg,
    JsonFlag,
    LabelsOut,
    OtCost,
    Overwrite,
    Space,
    app,
    report_table,
)

# ------------------------------------------------------------------------------------- cluster, assign-labels


@app.command()
def cluster(
    features: FeaturesArg,
    output: LabelsOut,
    method: Annotated[ClusterMethod, typer.Option(help="dbscan on k-reciprocal Jaccard, or k-means.")] = "dbscan",
    joint: Annotated[bool, typer.Option("--joint", help="Cluster both modalities together.")] = False,
    k1: Annotated[int, typer.Option(min=2, help="Jaccard: neighbours for k-reciprocal sets.")] = 30,
    k2: Annotated[int, typer.Option(min=1, help="Jaccard: neighbours for query expansion.")] = 6,
    eps: Annotated[float, typer.Option(min=0.0, max=1.0, help="DBSCAN radius on the Jaccard distance.")] = 0.6,
    min_samples: Annotated[int, typer.Option(min=1, help="DBSCAN core-point size.")] = 4,
    k: Annotated[int, typer.Option(help="k-means: number of clusters (per modality unless --joint).")] = 0,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
    device: Annotated[Device, typer.Option(help="kNN on the GPU; k-means there if faiss has a GPU.")] = "auto",
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Pseudo labels per modality (or --joint): Jaccard + DBSCAN (outliers -1) or k-means."""
    from vitool import stages
    from vitool.cluster import ClusterConfig

    config = ClusterConfig(method.value, k1, k2, eps, min_samples, k, joint, seed, device.value)
    report_table(f"cluster {method.value} -> {output}", stages.cluster(features, output, config, overwrite), as_json)


@app.command("assign-labels")
def assign_labels(
    features: FeaturesArg,
    labels: Annotated[Path, typer.Option("--labels", help="Per-modality labels (intra_label, else label).")],
    output: LabelsOut,
    method: Annotated[
        AssignMethod, typer.Option(help="ot (OTLA), mult (MULT transfer), experts (CRE) or hungarian (PGM).")
    ],
    lam: Annotated[float, typer.Option(help="ot: Sinkhorn power lambda (entropy 1/lambda).")] = 25.0,
    temperature: Annotated[float, typer.Option(help="ot: softmax temperature on cosine to visible centres.")] = 0.1,
    cost: Annotated[OtCost, typer.Option(help="ot: probs from the features file, or prototypes.")] = "auto",
    sharpen: Annotated[float, typer.Option(help="experts: logits are multiplied by this before the softmax.")] = 3.0,
    space: Annotated[Space, typer.Option(help="mult: the label space both modalities end in.")] = "visible",
    alpha: Annotated[float, typer.Option(help="mult: weight of the initial labels in the fixed point.")] = 0.2,
    device: Annotated[Device, typer.Option(help="mult: kernel, Sinkhorn, transfer and kNN on the GPU.")] = "auto",
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Put both modalities into one label space from per-modality labels."""
    from vitool import stages

    written = stages.assign_labels(
        features, labels, output, method.value, overwrite, lam=lam, temperature=temperature, cost=cost.value,
        sharpen=sharpen, space=space.value, alpha=alpha, device=device.value,
    )  # fmt: skip
    report_table(f"assign-labels {method.value} -> {output}", written, as_json)

"""Clustering and association quality of a features file against its hidden identities: what
the diagnostic runs at the end of docs/results.md were measured with.

For each k1 x eps, each modality is clustered on its own (k-reciprocal Jaccard + DBSCAN, the function
the unsupervised methods call every epoch) and scored with the ARI against the identities (outliers as
singletons). Then the ceiling of centre matching: Hungarian partners (PGM's matching, the visible
groups taking infrared ids) between the *true* identity groups, and the share of visible images whose
partner is their own identity.

Usage:  python benchmarks/cluster_grid.py TRAIN_FEATURES.h5 [--k1 10,20,30] [--eps 0.4,0.5,0.6]
"""

from __future__ import annotations

import argparse

import numpy as np

from vitool.assign import assign
from vitool.cluster import ClusterConfig, dbscan_labels
from vitool.evaluation.diagnostics import label_diagnostics
from vitool.io import read_features
from vitool.modality import INFRARED, VISIBLE, l2_normalise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features")
    parser.add_argument("--k1", default="10,20,30")
    parser.add_argument("--eps", default="0.4,0.5,0.6")
    args = parser.parse_args()
    fs = read_features(args.features)
    features = l2_normalise(fs.features)
    print("| modality | k1 | eps | clusters | outliers | ARI |\n|---|---|---|---|---|---|")
    for m, name in ((VISIBLE, "visible"), (INFRARED, "infrared")):
        rows = fs.modality == m
        for k1 in map(int, args.k1.split(",")):
            for eps in map(float, args.eps.split(",")):
                labels = dbscan_labels(features[rows], ClusterConfig(eps=eps, k1=k1, k2=6))
                diag = label_diagnostics(fs.pid[rows], fs.modality[rows], labels)
                print(f"| {name} | {k1} | {eps} | {diag['labels']} | {diag['outlier_ratio']:.2f} | {diag['ari']:.3f} |")
    groups = fs.pid + np.where(fs.modality == INFRARED, fs.pid.max() + 1, 0)  # true identities, per modality
    result = assign("hungarian", features, fs.modality, groups, space="infrared")
    vis = fs.modality == VISIBLE
    right = result.label[vis] - (fs.pid.max() + 1) == fs.pid[vis]
    print(f"\nHungarian matching of the true identity centres: {right.mean():.3f} of the visible images")


if __name__ == "__main__":
    main()

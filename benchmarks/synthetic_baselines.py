"""Difficulty of the default synthetic data: chance level and an untrained ImageNet backbone.

For each layout, given the test-split features file of a backbone (``vitool extract-features``), prints
the protocol metrics of those features and of chance (the same file with its features replaced by
random Gaussian vectors, mean over 5 seeds). The commands that produce the inputs are in
docs/synthetic.md.

Usage:  python benchmarks/synthetic_baselines.py sysu=FEATS.h5 regdb=FEATS.h5 llcm=FEATS.h5
"""

from __future__ import annotations

import sys

import numpy as np

from vitool.evaluation.evaluate import evaluate_protocols
from vitool.evaluation.protocols import reported_specs
from vitool.io import read_features


def row(name: str, results: list[dict]) -> str:
    cells = " | ".join(f"{r['rank1']:.1f} / {r['mAP']:.1f} / {r['mINP']:.1f}" for r in results)
    return f"| {name} | {cells} |"


def main() -> None:
    for arg in sys.argv[1:]:
        layout, path = arg.split("=", 1)
        fs = read_features(path)
        named = reported_specs(layout)
        specs = list(named.values())
        print(f"\n{layout}: {len(fs)} test images, {len(np.unique(fs.pid))} identities")
        print("| features | " + " | ".join(f"{name} R1 / mAP / mINP" for name in named) + " |")
        print("|---" * (1 + len(specs)) + "|")
        chance = []
        for seed in range(5):
            rng = np.random.default_rng(seed)
            fs.features = rng.normal(size=fs.features.shape).astype(np.float32)
            chance.append(evaluate_protocols(fs, specs))
        mean = [{k: np.mean([c[i][k] for c in chance]) for k in ("rank1", "mAP", "mINP")} for i in range(len(specs))]
        print(row("chance (random features, 5 seeds)", mean))
        print(row(f"{path}", evaluate_protocols(read_features(path), specs)))


if __name__ == "__main__":
    main()

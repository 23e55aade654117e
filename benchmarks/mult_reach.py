"""How right MULT's transfer is into each label space, against what its clusters let it be (docs/results.md).

From a MULT run's checkpoint (its last epoch's labels in both spaces, kept in the method state): for each
space, the share of the other modality's training images given a cluster whose majority identity is theirs
(``cross_precision``, coverage being 1), the share whose identity owns any cluster of that space
(``cross_reachable``, the ceiling), and the precision on those reachable images. Prints one JSON object.

Usage:  python benchmarks/mult_reach.py RUN/last.pt
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from vitool.data.datasets import load_split
from vitool.engine.config import load_config
from vitool.engine.trainer import split_validation
from vitool.errors import VitoolError
from vitool.evaluation.diagnostics import cross_modal_accuracy, cross_modal_reach
from vitool.modality import MODALITY_NAMES
from vitool.models.checkpoint import load_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a MULT run's last.pt")
    path = parser.parse_args().checkpoint
    state = load_checkpoint(path)
    space_labels = state.get("method", {}).get("space_labels")
    if not space_labels:
        problem = "holds no MULT labels (method state 'space_labels')"
        raise VitoolError(path, problem, "give a `--method mult` run's last.pt")
    config = load_config(None, state["config"])
    samples = sorted(load_split(config.dataset, config.root, "train", config.trial), key=lambda s: s.modality)
    train, _ = split_validation(samples, config.val_ids, config.seed)  # the rows the method's labels follow
    pid, modality = np.array([s.pid for s in train]), np.array([s.modality for s in train])
    report = {}
    for space, label in sorted(space_labels.items()):
        label = np.asarray(label)
        precision = cross_modal_accuracy(pid, modality, label, space)
        reach = cross_modal_reach(pid, modality, label, space)
        if precision is None or reach is None:  # no clustered image in this space: nothing to score
            report[MODALITY_NAMES[space]] = None
            continue
        report[MODALITY_NAMES[space]] = {
            "cross_precision": round(precision, 4),
            "cross_reachable": round(reach, 4),
            "precision_on_reachable": round(precision / reach, 4) if reach else None,
        }
    print(json.dumps(report))


if __name__ == "__main__":
    try:
        main()
    except VitoolError as exc:  # a bad checkpoint: one line, as the CLI does
        sys.exit(f"vitool: error: {exc.line()}")

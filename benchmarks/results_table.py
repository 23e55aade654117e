"""The docs/results.md table: mean and spread over seeds of the results.json of several training runs.

Each argument is ROW=RUN_DIR[,RUN_DIR...]; a row prints Rank-1 / mAP / mINP for SYSU all and indoor
search (mean +- sample standard deviation over its runs), plus the last epoch's infrared pseudo-label
accuracy when the runs logged it. A folder may hold only a results.json, e.g. the scores of a run's
checkpoint on another copy of the data (`vitool evaluate --checkpoint ... --json`, one file per mode,
merged as {"all": ..., "indoor": ...}).

Usage:  python benchmarks/results_table.py supervised=runs/sup-s0,runs/sup-s1,runs/sup-s2 otla=...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

METRICS = ("rank1", "mAP", "mINP")


def cell(values: list[float]) -> str:
    spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.1f} ± {spread:.1f}"


def row(name: str, runs: list[Path]) -> str:
    results = [json.loads((run / "results.json").read_text()) for run in runs]
    cells = [cell([r[mode][m] for r in results]) for mode in ("all", "indoor") for m in METRICS]
    logs = [
        [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        for run in runs
        if (run / "log.jsonl").exists()
    ]
    accuracy = [log[-1]["ir_label_accuracy"] for log in logs if "ir_label_accuracy" in log[-1]]
    cells.append(cell(accuracy) if accuracy else "-")
    return f"| {name} | {len(runs)} | " + " | ".join(cells) + " |"


def main() -> None:
    print("| method | runs | all R1 | all mAP | all mINP | indoor R1 | indoor mAP | indoor mINP | IR label acc. |")
    print("|---" * 9 + "|")
    for arg in sys.argv[1:]:
        name, paths = arg.split("=", 1)
        print(row(name, [Path(p) for p in paths.split(",")]))


if __name__ == "__main__":
    main()

"""Per-epoch pseudo-label diagnostics of training runs, averaged over seeds, as a markdown table.

Each run's log.jsonl holds one record per epoch; this prints, for every epoch, the mean of each chosen
key over the runs that logged it (e.g. the heterogeneous-experts CRE pair precision and coverage, or
OTLA's ir_label_accuracy), so docs can show whether association improves as training goes on.

Usage:  python benchmarks/epoch_diagnostics.py runs/experts-s0 runs/experts-s1 runs/experts-s2 \
            --keys cre_consistent_precision,cre_consistent_coverage,cre_single_precision
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def epoch_table(runs: list[Path], keys: list[str]) -> str:
    logs = [[json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()] for run in runs]
    epochs = sorted({r["epoch"] for log in logs for r in log})
    lines = ["| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for epoch in epochs:
        records = [r for log in logs for r in log if r["epoch"] == epoch]
        cells = []
        for key in keys:
            values = [r[key] for r in records if key in r]
            cells.append(f"{np.mean(values):.3f}" if values else "-")
        if any(c != "-" for c in cells):  # epochs that logged none of the keys (e.g. stage 1) are left out
            lines.append(f"| {epoch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with log.jsonl)")
    parser.add_argument("--keys", required=True, help="comma-separated log keys")
    args = parser.parse_args()
    print(epoch_table(args.runs, args.keys.split(",")))


if __name__ == "__main__":
    main()

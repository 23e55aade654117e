"""The report of the fitted-start verdict (benchmarks/verdict.sh's fitted pairs; benchmarks/gpu_verdict.sh).

For each pair, over the seeds whose baseline, method and shuffled control finished (the oracle joins where it
finished on each of them): ``vitool compare`` of the rows against the baseline continued and of the method
against its shuffled control (paired differences, 95% intervals); and each finished run's association precision
per epoch (percent), the figure SYSU-MM01's papers plot.

    python benchmarks/fitted_report.py RUNS [--folder fitted-x1] [--seeds 0 1 2] [--pairs fitted-otla ...]
        [--plot precision.png]   (the precision per epoch of every row and seed, SYSU-MM01's beside it)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitool import stages

# pair -> (baseline continued, method, the log key of its association precision, its scale to percent)
PAIRS = {
    "fitted-otla": ("visible", "otla", "ir_label_accuracy", 1.0),
    "fitted-pclhd": ("dcl", "pclhd", "cross_precision", 100.0),
    "fitted-mult": ("dcl-onesched", "mult", "cross_precision", 100.0),
    "fitted-experts": ("hel", "experts", "cre_consistent_precision", 100.0),
}


# the association precision the papers publish on SYSU-MM01 (percent), drawn beside ours
SYSU_PRECISION = {
    "fitted-otla": (50.0, "OTLA Fig. 4: about half the infrared labels right"),
    "fitted-experts": (95.5, "experts: 95-96% of consistent pairs right"),
}


def precision_per_epoch(run: Path, key: str, scale: float) -> list[float | None]:
    """The association precision of each logged epoch (None where the epoch had no association)."""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    return [round(r[key] * scale, 2) if isinstance(r.get(key), int | float) else None for r in records]


def pair_report(folder: Path, pair: str, seeds: list[int]) -> dict:
    """The pair's comparisons over the seeds whose baseline, method and control all finished (the oracle
    joins where it finished on each of them), and the precision per epoch of every finished run."""
    base, method, key, scale = PAIRS[pair]
    oracle = f"{method}-oracle"
    rows = [base, method, oracle, f"{method}-shuffled"]
    finished = {row: [s for s in seeds if (folder / f"{row}-s{s}" / "results.json").is_file()] for row in rows}
    done = [s for s in seeds if all(s in finished[row] for row in rows if row != oracle)]
    report: dict = {"rows": rows, "seeds_finished": done, "sysu_mm01_precision": SYSU_PRECISION.get(pair)}
    report["association_precision"] = {
        row: {str(s): precision_per_epoch(folder / f"{row}-s{s}", key, scale) for s in finished[row]}
        for row in rows[1:]
        if finished[row]
    }
    if done:
        paired = [row for row in rows if row != oracle or set(done) <= set(finished[oracle])]
        groups = {row: [folder / f"{row}-s{s}" for s in done] for row in paired}
        report["versus_baseline"] = stages.compare(groups, base)
        control = {r: groups[r] for r in (f"{method}-shuffled", method)}
        report["versus_control"] = stages.compare(control, f"{method}-shuffled")
    return report


def plot(report: dict, path: Path) -> None:
    """One panel per pair: each row's precision per epoch (one line per seed), SYSU-MM01's as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [p for p, r in report["pairs"].items() if r.get("association_precision")]
    fig, axes = plt.subplots(1, max(len(pairs), 1), figsize=(4.2 * max(len(pairs), 1), 3.4), squeeze=False)
    colours = {"oracle": "tab:green", "shuffled": "tab:red"}
    for ax, pair in zip(axes[0], pairs, strict=False):
        for row, seeds in report["pairs"][pair]["association_precision"].items():
            colour = colours.get(row.rsplit("-", 1)[-1], "tab:blue")
            for i, values in enumerate(seeds.values()):
                points = [(e + 1, v) for e, v in enumerate(values) if v is not None]
                if points:
                    ax.plot(*zip(*points, strict=True), color=colour, alpha=0.8, label=row if i == 0 else None)
        if pair in SYSU_PRECISION:
            value, what = SYSU_PRECISION[pair]
            ax.axhline(value, color="grey", linestyle="--", label=f"SYSU-MM01 ({what.split(':')[0]})")
        ax.set(title=pair, xlabel="epoch of the association stage", ylabel="association precision (%)", ylim=(0, 100))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("--folder", default="fitted-x1", help="the budget's folder under RUNS")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--timeout-rc", type=int, default=0, help="exit code of the timed runs (124: stopped)")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--options", default="", help="the train options every run got")
    parser.add_argument("--plot", type=Path, default=None, help="draw the precision per epoch here (PNG)")
    args = parser.parse_args()
    folder = args.runs / args.folder
    report = {
        "folder": str(folder),
        "train_options": args.options,
        "seconds": args.seconds,
        "stopped_by_timeout": args.timeout_rc == 124,
        "pairs": {pair: pair_report(folder, pair, args.seeds) for pair in args.pairs},
    }
    if args.plot is not None:
        plot(report, args.plot)
        report["plot"] = str(args.plot)
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

"""Compare training runs over seeds: mean and sample standard deviation of every protocol metric, and,
against a baseline group, the paired difference per seed with its 95% Student-t confidence interval.

A run is a `vitool train` folder (results.json, config.toml for the seed and dataset, log.jsonl for the
last epoch's label-quality diagnostics), or any folder with a results.json of the same shape. Runs of
two groups are paired by their config's seed, so a seed's luck is shared by both sides of a difference.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitool.engine.report import diagnostic_keys
from vitool.errors import VitoolError
from vitool.evaluation.evaluate import SUMMARY_KEYS as METRICS  # the metrics results.json holds


@dataclass
class Run:
    path: Path
    protocol: str
    scores: dict[str, dict[str, float]]  # setting (all, indoor, v2i, ...) -> metric -> value
    seed: int | None = None
    dataset: str | None = None
    diagnostics: dict[str, float] = field(default_factory=dict)
    lr: list[float] = field(default_factory=list)  # per epoch (log.jsonl): the schedule the run ran
    machine: dict[str, Any] | None = None  # provenance: CPU, threads, GPU (the same seed differs across them)


def load_run(path: str | Path) -> Run:
    path = Path(path)
    results_file = path / "results.json"
    if not results_file.is_file():
        raise VitoolError(path, "has no results.json", "pass a finished `vitool train` run folder")
    try:
        results = json.loads(results_file.read_text())
        protocol = results.pop("protocol")
        provenance = results.pop("provenance", None) or {}  # what made the run (vitool 0.1's had none)
        scores = {name: {m: float(v[m]) for m in METRICS if m in v} for name, v in results.items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        raise VitoolError(results_file, "is not a vitool results.json", "re-run the training's test") from None
    run = Run(path, protocol, scores, machine=provenance.get("machine") if isinstance(provenance, dict) else None)
    if (path / "config.toml").is_file():
        try:
            config = tomllib.loads((path / "config.toml").read_text())
        except tomllib.TOMLDecodeError as exc:
            raise VitoolError(path / "config.toml", f"is not valid TOML ({exc})", "restore the run's config") from None
        run.seed, run.dataset = config.get("seed"), config.get("dataset")
    if (path / "log.jsonl").is_file():
        lines = [line for line in (path / "log.jsonl").read_text().splitlines() if line.strip()]
        try:
            records = [json.loads(line) for line in lines]
        except json.JSONDecodeError:
            raise VitoolError(path / "log.jsonl", "has a line that is not JSON", "restore the run's log") from None
        last = records[-1] if records else {}
        run.lr = [float(r["lr"]) for r in records if isinstance(r.get("lr"), int | float)]
        run.diagnostics = {k: float(last[k]) for k in diagnostic_keys(last)}
    return run


def mean_sd(values: list[float]) -> dict[str, float | None]:
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "sd": sd, "n": len(values)}


def paired(differences: list[float]) -> dict[str, Any]:
    """Mean paired difference and its 95% confidence interval (Student t, n - 1 degrees of freedom)."""
    from scipy.stats import t

    n = len(differences)
    mean = float(np.mean(differences))
    if n < 2:
        return {"mean": mean, "ci95": None, "n": n, "per_seed": differences}
    half = float(t.ppf(0.975, n - 1) * np.std(differences, ddof=1) / math.sqrt(n))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n, "per_seed": differences}


def compare(groups: dict[str, list[Run]], baseline: str | None = None) -> dict[str, Any]:
    """Every group's mean / sd per setting and metric, and each group's paired difference to ``baseline``."""
    runs = [r for rs in groups.values() for r in rs]
    protocols = {r.protocol for r in runs}
    datasets = {r.dataset for r in runs if r.dataset is not None}
    if len(protocols) > 1 or len(datasets) > 1:
        seen = ", ".join(f"{r.path}: {r.dataset or '?'}/{r.protocol}" for r in runs)
        raise VitoolError(None, f"runs scored on different datasets or protocols ({seen})", "compare like with like")
    if baseline is not None and baseline not in groups:
        raise VitoolError(None, f"--baseline {baseline} is not a group", f"use one of {', '.join(groups)}")
    settings = list(runs[0].scores)
    out: dict[str, Any] = {"protocol": runs[0].protocol, "dataset": next(iter(datasets), None), "groups": {}}
    for name, group in groups.items():
        entry: dict[str, Any] = {"runs": [str(r.path) for r in group], "seeds": [r.seed for r in group]}
        entry["scores"] = {
            s: {m: mean_sd([r.scores[s][m] for r in group]) for m in METRICS if all(m in r.scores[s] for r in group)}
            for s in settings
        }
        keys = sorted(set.intersection(*(set(r.diagnostics) for r in group)))
        entry["diagnostics"] = {k: mean_sd([r.diagnostics[k] for r in group]) for k in keys}
        out["groups"][name] = entry
    if baseline is not None:
        out["baseline"] = baseline
        base = _by_seed(baseline, groups[baseline])
        for name, group in groups.items():
            if name == baseline:
                continue
            mine = _by_seed(name, group)
            if set(mine) != set(base):
                raise VitoolError(
                    None,
                    f"group {name} has seeds {sorted(mine)}, the baseline {baseline} {sorted(base)}",
                    "pair every run with a baseline run of the same seed",
                )
            seeds = sorted(mine)
            mismatch = _schedule_mismatch(mine, base, seeds)
            if mismatch:
                out.setdefault("warnings", []).append(
                    f"{name} and the baseline {baseline} ran different learning-rate schedules ({mismatch}): "
                    "their difference mixes the method with the schedule"
                )
            machines = _machine_mismatch(mine, base, seeds)
            if machines:
                out.setdefault("warnings", []).append(
                    f"{name} and the baseline {baseline} ran on different machines ({machines}): the same seed "
                    "gives another run on another CPU or thread count, so run both of a pair on one machine"
                )
            out["groups"][name]["paired"] = {
                s: {
                    m: paired([mine[k].scores[s][m] - base[k].scores[s][m] for k in seeds])
                    for m in out["groups"][name]["scores"][s]
                }
                for s in settings
            }
    return out


MACHINE_KEYS = ("cpu", "threads", "gpu", "torch")


def _machine_mismatch(mine: dict[int, Run], base: dict[int, Run], seeds: list[int]) -> str | None:
    """The first seed whose two runs' provenance names another CPU, thread count, GPU or torch."""
    for seed in seeds:
        a, b = mine[seed].machine, base[seed].machine
        if not a or not b:
            continue  # runs made before vitool recorded the machine
        differ = [k for k in MACHINE_KEYS if a.get(k) != b.get(k)]
        if differ:
            return f"seed {seed}: " + ", ".join(f"{k} {a.get(k)} / {b.get(k)}" for k in differ)
    return None


def _schedule_mismatch(mine: dict[int, Run], base: dict[int, Run], seeds: list[int]) -> str | None:
    """Where a pair's learning rates per epoch first differ (runs without a log are not checked)."""
    for seed in seeds:
        a, b = mine[seed].lr, base[seed].lr
        if not (a and b):
            continue
        if len(a) != len(b):
            return f"seed {seed}: {len(a)} epochs against {len(b)}"
        differ = np.flatnonzero(~np.isclose(a, b, rtol=1e-6, atol=0))
        if len(differ):
            epoch = int(differ[0])
            return f"seed {seed}, first at epoch {epoch + 1}: lr {a[epoch]:.3g} against {b[epoch]:.3g}"
    return None


def _by_seed(name: str, group: list[Run]) -> dict[int, Run]:
    out: dict[int, Run] = {}
    for run in group:
        if run.seed is None:
            raise VitoolError(run.path, "has no config.toml with a seed", f"group {name} cannot be paired")
        if run.seed in out:
            raise VitoolError(run.path, f"seed {run.seed} twice in group {name}", "one run per seed and group")
        out[run.seed] = run
    return out


# ----------------------------------------------------------------------------------------- rendering

NAMES = {"rank1": "R1", "rank5": "R5", "rank10": "R10", "rank20": "R20", "mAP": "mAP", "mINP": "mINP"}


def rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per group, mean ± sd of each setting's metrics, the diagnostics, and with a
    baseline the paired difference in Rank-1 and mAP of the first setting with its 95% interval."""
    groups = result["groups"]
    settings = list(next(iter(groups.values()))["scores"])
    metrics = [(s, m) for s in settings for m in next(iter(groups.values()))["scores"][s]]
    diag = sorted({k for g in groups.values() for k in g["diagnostics"]})
    header = ["group", "n", *[f"{s} {NAMES[m]}" for s, m in metrics], *diag]
    first = settings[0]
    if "baseline" in result:
        header += [f"Δ{first} R1 [95% CI]", f"Δ{first} mAP [95% CI]"]
    table = []
    for name, g in groups.items():
        line = [name, str(len(g["runs"]))]
        line += [_cell(g["scores"][s][m]) for s, m in metrics]
        line += [_cell(g["diagnostics"][k], 3) if k in g["diagnostics"] else "-" for k in diag]
        if "baseline" in result:
            line += [_diff(g["paired"][first][m]) if "paired" in g else "baseline" for m in ("rank1", "mAP")]
        table.append(line)
    return header, table


def _cell(stat: dict[str, Any], digits: int = 1) -> str:
    sd = f" ± {stat['sd']:.{digits}f}" if stat["sd"] is not None else ""
    return f"{stat['mean']:.{digits}f}{sd}"


def _diff(stat: dict[str, Any]) -> str:
    if stat["ci95"] is None:
        return f"{stat['mean']:+.1f}"
    low, high = stat["ci95"]
    return f"{stat['mean']:+.1f} [{low:+.1f}, {high:+.1f}]"


STYLES = ("table", "markdown", "csv")


def render(result: dict[str, Any], style: str) -> str:
    header, table = rows(result)
    if style == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in table])
    if style == "csv":
        import csv
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *table])
        return buffer.getvalue().rstrip("\n")
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in [header, *table])

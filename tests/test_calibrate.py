"""benchmarks/calibrate.py: the calibration targets a-e from run folders, against hand computations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from .conftest import make_run

spec = importlib.util.spec_from_file_location("calibrate", Path(__file__).parents[1] / "benchmarks" / "calibrate.py")
calibrate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(calibrate)


def _runs(root: Path, name: str, rank1s: list[float], log: list[dict] | None = None) -> None:
    for seed, r1 in enumerate(rank1s):
        run = make_run(root / f"{name}-s{seed}", seed, r1, r1)
        if log is not None:
            (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")


def test_targets_from_run_folders(tmp_path):
    _runs(tmp_path, "supervised", [40.0, 44.0])
    _runs(tmp_path, "visible", [10.0, 12.0])
    _runs(tmp_path, "otla-oracle", [20.0, 21.0])  # +10, +9 over visible: interval above zero, >= 2.75
    _runs(tmp_path, "otla-shuffled", [11.0, 11.0])  # +1, -1: mean 0, not above the baseline
    _runs(tmp_path, "visible-ld", [14.0, 15.0])  # Table 2 row 2: the same infrared exposure, no label
    _runs(tmp_path, "otla-random", [13.0, 13.0])  # above visible-only (+2), under visible-ld (-1.5)
    _runs(tmp_path, "hel", [30.0, 30.0])
    _runs(tmp_path, "experts-oracle", [31.0, 32.0])  # +1, +2: above zero, but under a quarter of 30
    _runs(tmp_path, "experts-shuffled", [31.0, 31.0])  # +1: above the baseline, the benchmark fails d
    records = [{"epoch": 3, "cre_consistent_precision": 0.9, "cre_consistent_coverage": 0.3}]
    records.append({"epoch": 4, "cre_consistent_precision": 0.8, "cre_consistent_coverage": 0.5})
    _runs(tmp_path, "experts", [33.0, 33.0], log=[{"epoch": 0}, *records])
    rows = {(r["target"], r["what"].split(",")[0]): r for r in calibrate.table(tmp_path, [0, 1])}
    assert rows["a", "supervised Rank-1"]["met"] and rows["a", "supervised Rank-1"]["measured"].startswith("42.0")
    ratio = rows["b", "visible-only / supervised"]
    assert ratio["met"] and ratio["measured"].startswith(f"{(10 / 40 + 12 / 44) / 2:.2f}")
    hel = rows["b", "HEL only / supervised"]  # reported, not a target
    assert hel["met"] is None and hel["measured"].startswith(f"{(30 / 40 + 30 / 44) / 2:.2f}")
    assert rows["c", "otla-oracle - visible"]["met"] and rows["c", "otla-oracle - visible"]["measured"].startswith(
        "+9.5"
    )
    assert not rows["c", "experts-oracle - hel"]["met"]
    assert rows["d", "otla-shuffled - visible"]["met"] and not rows["d", "experts-shuffled - hel"]["met"]
    assert not rows["d", "otla-random - visible"]["met"]
    assert rows["d", "otla-random - visible-ld"]["met"]
    assert rows["d", "otla-random - visible-ld"]["measured"].startswith("-1.5")
    separation = rows["c-d", "otla-oracle - otla-shuffled"]  # +9, +10: the true links above the broken ones
    assert separation["met"] and separation["measured"].startswith("+9.5")
    assert not rows["c-d", "experts-oracle - experts-shuffled"]["met"]  # 0, +1: the interval reaches below 0
    cre = rows["e", "CRE consistent pairs right"]
    assert cre["measured"].startswith("90.0") and cre["met"]  # the first epoch that logged it: 90% >= 85%
    assert ("c", "pclhd-oracle - dcl") not in rows  # pairs without runs are left out
    assert "| a | supervised Rank-1 |" in calibrate.markdown(list(rows.values()))

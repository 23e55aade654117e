"""`vitool compare`: means, sample standard deviations and paired 95% intervals against hand computations."""

import json
import math

import pytest

from .conftest import make_run, one_line_error, run_cli


def test_paired_difference_and_interval_match_hand_computation(tmp_path):
    base = [
        make_run(tmp_path / f"b{s}", s, r, m, a) for s, r, m, a in ((0, 10, 20, 30), (1, 12, 21, 32), (2, 14, 22, 34))
    ]
    # the method's runs listed in another seed order: pairing is by seed, not by position
    mine = [
        make_run(tmp_path / f"m{s}", s, r, m, a) for s, r, m, a in ((2, 18, 25, 50), (0, 13, 20, 40), (1, 14, 24, 45))
    ]
    groups = ("base=" + ",".join(map(str, base)), "method=" + ",".join(map(str, mine)), "--baseline", "base")
    res = run_cli("compare", *groups, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    method = out["groups"]["method"]
    assert method["scores"]["all"]["rank1"]["mean"] == pytest.approx(15.0)
    assert method["scores"]["all"]["rank1"]["sd"] == pytest.approx(math.sqrt(7))  # ((-2)^2 + (-1)^2 + 3^2) / 2
    assert method["diagnostics"]["ir_label_accuracy"]["mean"] == pytest.approx(45.0)  # the last epoch's
    paired = method["paired"]["all"]["rank1"]
    assert paired["per_seed"] == [3.0, 2.0, 4.0]  # seeds 0, 1, 2
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) x sd 1 / sqrt(3)
    assert paired["mean"] == pytest.approx(3.0)
    assert paired["ci95"] == pytest.approx([3.0 - half, 3.0 + half])
    assert method["paired"]["indoor"]["mAP"]["per_seed"] == [0.0, 3.0, 3.0]
    assert "paired" not in out["groups"]["base"]
    table = run_cli("compare", *groups, "--format", "markdown")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("| group | n | all R1 |") and "Δall R1 [95% CI]" in lines[0]
    assert "15.0 ± 2.6" in lines[3] and "+3.0 [+0.5, +5.5]" in lines[3] and lines[2].endswith("baseline | baseline |")
    csv = run_cli("compare", "base=" + ",".join(map(str, base)), "--format", "csv")
    assert csv.stdout.splitlines()[1].startswith("base,3,12.0 ± 2.0,")


def test_compare_refuses_what_cannot_be_compared(tmp_path):
    a = make_run(tmp_path / "a", 0, 10, 20)
    b = make_run(tmp_path / "b", 1, 12, 22)
    regdb = make_run(tmp_path / "regdb", 0, 50, 40, dataset="regdb", protocol="regdb")
    scored = make_run(tmp_path / "scored", 0, 11, 21, config=False)  # a checkpoint scored elsewhere: no seed
    (tmp_path / "empty").mkdir()
    one_line_error(run_cli("compare", f"x={tmp_path / 'empty'}"), "empty", "no results.json")
    one_line_error(run_cli("compare", f"x={a}", f"y={b}", "--baseline", "x"), "seeds [1]", "[0]")
    one_line_error(run_cli("compare", f"x={a}", f"y={regdb}"), "different datasets or protocols")
    one_line_error(run_cli("compare", f"x={a}", f"y={scored}", "--baseline", "x"), "no config.toml with a seed")
    one_line_error(run_cli("compare", f"x={a}", "--baseline", "z"), "--baseline z is not a group")
    (b / "log.jsonl").write_text("{not json\n")
    one_line_error(run_cli("compare", f"x={b}"), "log.jsonl", "not JSON")
    assert run_cli("compare", f"x={a}", f"y={scored}").returncode == 0  # without pairing a seedless run is fine
    assert run_cli("compare", "nonsense").returncode == 2


def test_plot_draws_the_comparison_with_its_provenance_and_never_overwrites(tmp_path):
    from PIL import Image

    base = [make_run(tmp_path / f"b{s}", s, 10 + s, 20) for s in range(3)]
    mine = [make_run(tmp_path / f"m{s}", s, 12 + s, 21) for s in range(3)]
    groups = ("base=" + ",".join(map(str, base)), "method=" + ",".join(map(str, mine)), "--baseline", "base")
    plot = tmp_path / "verdict.png"
    res = run_cli("compare", *groups, "--plot", plot, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["plot"] == str(plot)
    meta = json.loads(Image.open(plot).text["Description"])
    assert meta["config"]["baseline"] == "base" and str(base[0] / "results.json") in meta["inputs"]
    one_line_error(run_cli("compare", *groups, "--plot", plot), "verdict.png", "already exists")
    assert run_cli("compare", *groups, "--plot", plot, "--overwrite").returncode == 0
    bad = tmp_path / "never.png"  # an error after the output check leaves no file behind
    one_line_error(run_cli("compare", f"x={base[0]}", "--baseline", "z", "--plot", bad), "--baseline z")
    assert not bad.exists() and not list(tmp_path.glob(".never.png*"))


def test_a_pair_that_ran_different_schedules_is_flagged(tmp_path):
    """The confound matched schedules remove: a baseline whose rate decays where the method's does not."""

    def with_lr(folder, seed, rates):
        run = make_run(folder, seed, 10.0 + seed, 20.0)
        records = [{"epoch": e, "lr": lr, "loss": 1.0} for e, lr in enumerate(rates)]
        (run / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
        return run

    base = [with_lr(tmp_path / f"b{s}", s, [0.5, 1.0, 0.1, 0.1]) for s in range(2)]
    same = [with_lr(tmp_path / f"s{s}", s, [0.5, 1.0, 0.1, 0.1]) for s in range(2)]
    other = [with_lr(tmp_path / f"o{s}", s, [0.5, 1.0, 1.0, 0.1]) for s in range(2)]
    group = lambda name, runs: f"{name}=" + ",".join(map(str, runs))  # noqa: E731
    res = run_cli("compare", group("base", base), group("same", same), "--baseline", "base", "--json")
    assert res.returncode == 0 and "warning" not in res.stderr and "warnings" not in json.loads(res.stdout)
    res = run_cli("compare", group("base", base), group("other", other), "--baseline", "base", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["warnings"] == [
        "other and the baseline base ran different learning-rate schedules (seed 0, first at epoch 3: lr 1 "
        "against 0.1): their difference mixes the method with the schedule"
    ]
    assert res.stderr.startswith("vitool: warning: other and the baseline base") and len(res.stderr.splitlines()) == 1


def test_a_pair_that_ran_on_different_machines_is_flagged(tmp_path):
    """The same seed gives another run on another CPU: a pair's two runs must share one machine."""

    def on(folder, seed, cpu, threads=2):
        run = make_run(folder, seed, 10.0 + seed, 20.0)
        results = json.loads((run / "results.json").read_text())
        results["provenance"] = {"machine": {"cpu": cpu, "threads": threads, "torch": "2.14.1"}}
        (run / "results.json").write_text(json.dumps(results))
        return run

    base = [on(tmp_path / f"b{s}", s, "Xeon A") for s in range(2)]
    same = [on(tmp_path / f"s{s}", s, "Xeon A") for s in range(2)]
    other = [on(tmp_path / "o0", 0, "Xeon A"), on(tmp_path / "o1", 1, "Xeon A", threads=1)]
    group = lambda name, runs: f"{name}=" + ",".join(map(str, runs))  # noqa: E731
    res = run_cli("compare", group("base", base), group("same", same), "--baseline", "base", "--json")
    assert res.returncode == 0 and "warnings" not in json.loads(res.stdout)
    res = run_cli("compare", group("base", base), group("other", other), "--baseline", "base", "--json")
    warning = json.loads(res.stdout)["warnings"][0]
    assert warning.startswith("other and the baseline base ran on different machines (seed 1: threads 1 / 2)")

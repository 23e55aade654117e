"""The per-epoch line and curves.png: loss terms, held-out scores and label quality, numbers only."""

import json
import os
import subprocess
import sys

import matplotlib.image

from vitool.engine.report import epoch_line, loss_terms, plot_curves, quality_keys

RECORD = {
    "epoch": 3, "lr": 0.0035, "loss": 8.3, "ce_v": 3.0, "pal": 0.27, "seconds": 60.9, "images_per_s": 31.5,
    "labels_from": "ground truth", "ot_sinkhorn_iterations": 190, "ot_cost": "probs", "ir_label_accuracy": 7.0,
    "grl_coefficient": 1.0, "visible_clusters": 61, "cross_precision": 0.17, "stage": 2,
    "val": {"rank1": 36.36, "mAP": 27.56, "mINP": 18.6},
}  # fmt: skip


def test_keys_are_sorted_into_losses_and_label_quality():
    assert loss_terms(RECORD) == ["loss", "ce_v", "pal"]  # no strings, counters or effective settings
    assert loss_terms({**RECORD, "loss_terms": ["loss", "pal"]}) == ["loss", "pal"]
    assert quality_keys(RECORD) == ["ir_label_accuracy", "cross_precision"]  # an older log: by name endings


def test_a_method_names_its_figures_by_kind_and_readers_take_its_word():
    from vitool.engine.report import diagnostic_keys, epoch_report
    from vitool.methods.contract import EpochReport

    report = EpochReport(quality={"mystery_score": 0.4}, counts={"groups": 12}, settings={"ir_label_accuracy": 9.0})
    record = {**RECORD, **epoch_report(report)}
    assert quality_keys(record) == ["mystery_score"]  # plotted and on the line, whatever its name
    assert diagnostic_keys(record) == ["mystery_score", "groups"]  # what compare summarises
    assert "ir_label_accuracy" not in epoch_line(record, 8) and "mystery_score 0.4" in epoch_line(record, 8)
    plain = epoch_report({"x": 1, "ir_label_accuracy": 9.0, "visible_clusters": 4})  # the earlier contract
    assert plain["quality_keys"] == ["ir_label_accuracy"] and plain["count_keys"] == ["visible_clusters"]
    assert EpochReport.from_state(report.state()) == report


def test_epoch_line_is_one_readable_line():
    line = epoch_line(RECORD, 8)
    assert line == (
        "epoch 3/8 (stage 2)  lr 3.50e-03  loss 8.300 (ce_v 3.000, pal 0.270)  32 img/s  "
        "val Rank-1 36.4 mAP 27.6  ir_label_accuracy 7, cross_precision 0.17"
    )


def test_curves_png_has_three_panels(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({**RECORD, "epoch": e, "loss": 9.0 - e}) + "\n" for e in range(1, 4)))
    plot_curves(log, tmp_path / "curves.png")
    image = matplotlib.image.imread(tmp_path / "curves.png")
    assert image.shape[1] > 2.5 * image.shape[0]  # three panels side by side


def test_tensorboard_without_the_extra_is_one_line_and_writes_nothing(tmp_path, synth_root):
    from .conftest import one_line_error

    hide = tmp_path / "hide"
    (hide / "tensorboard").mkdir(parents=True)
    (hide / "tensorboard" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    args = ["train", "--root", synth_root["sysu"], "--tensorboard", "-o", tmp_path / "run"]
    result = subprocess.run([sys.executable, "-m", "vitool", *map(str, args)], capture_output=True, text=True, env=env)
    one_line_error(result, "needs the tensorboard package", "pip install 'vitool[tensorboard]'")
    assert not (tmp_path / "run").exists()

"""What a run shows a person: one readable line per epoch, and curves.png. log.jsonl keeps every number.

An epoch record (one line of log.jsonl) is flat: ``epoch`` (counted from 1, as the line and the plot),
``lr``, the loss terms (named in ``loss_terms``), ``seconds``, ``images_per_s``, the method's report
(its label-quality figures named in ``quality_keys``, its counts in ``count_keys``, its effective
settings such as ``grl_coefficient`` beside them), and ``val`` with the held-out Rank-1, mAP and mINP.
Logs written before those lists existed are read by the figures' name endings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# How logs written before ``quality_keys`` and ``count_keys`` named their label-quality figures and counts
DIAGNOSTIC_SUFFIXES = ("_accuracy", "_ari", "_precision", "_coverage", "_pairs", "_clusters", "_outliers")
QUALITY_SUFFIXES = ("_accuracy", "_ari", "_precision", "_coverage")  # the ones plotted: rates, not counts
_NOT_LOSSES = {"epoch", "lr", "seconds", "images_per_s", "data_wait_share", "labels_seconds", "val", "stage"}
_NOT_LOSSES |= {"loss_terms", "quality_keys", "count_keys"}


def epoch_report(report: Any) -> dict[str, Any]:
    """A method's EpochReport as record fields: every figure by name, with the names of its quality
    figures and counts. A plain dict (a plugin written for the earlier contract) is sorted by the name
    endings that contract used."""
    from vitool.methods.contract import EpochReport

    if not isinstance(report, EpochReport):
        flat = dict(report or {})
        quality = {k: v for k, v in flat.items() if _number(v) and k.endswith(QUALITY_SUFFIXES)}
        counts = {k: v for k, v in flat.items() if _number(v) and k.endswith(DIAGNOSTIC_SUFFIXES) and k not in quality}
        report = EpochReport(quality, counts, {k: v for k, v in flat.items() if k not in quality | counts})
    return {**report.flat(), "quality_keys": list(report.quality), "count_keys": list(report.counts)}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def loss_terms(record: dict[str, Any]) -> list[str]:
    """The loss keys of a record; for logs written before ``loss_terms`` existed, the numeric keys that are
    neither bookkeeping nor diagnostics nor an effective setting (``grl_*``, ``ema_*``, ``ot_*``)."""
    if "loss_terms" in record:
        return list(record["loss_terms"])
    return [
        k
        for k, v in record.items()
        if _number(v)
        and k not in _NOT_LOSSES
        and not k.endswith(DIAGNOSTIC_SUFFIXES)
        and not k.startswith(("grl_", "ema_", "ot_", "cre_"))
    ]


def quality_keys(record: dict[str, Any]) -> list[str]:
    """The record's label-quality figures: those its method named, or (an older log) by their names."""
    if "quality_keys" in record:
        return [k for k in record["quality_keys"] if _number(record.get(k))]
    return [k for k, v in record.items() if _number(v) and k.endswith(QUALITY_SUFFIXES)]


def diagnostic_keys(record: dict[str, Any]) -> list[str]:
    """The label-quality figures and counts ``vitool compare`` summarises."""
    if "quality_keys" in record:
        return [k for k in (*record["quality_keys"], *record.get("count_keys", [])) if _number(record.get(k))]
    return [k for k, v in record.items() if _number(v) and k.endswith(DIAGNOSTIC_SUFFIXES)]


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """``epoch 3/8  lr 3.50e-03  loss 8.31 (ce_v 3.00, ...)  31 img/s  val Rank-1 36.4 mAP 27.6  ...``"""
    terms = [k for k in loss_terms(record) if k != "loss"]
    line = f"epoch {record['epoch']}/{epochs}"
    if "stage" in record:
        line += f" (stage {record['stage']})"
    line += f"  lr {record['lr']:.2e}  loss {record.get('loss', float('nan')):.3f}"
    if terms:
        line += " (" + ", ".join(f"{k} {record[k]:.3f}" for k in terms) + ")"
    line += f"  {record.get('images_per_s', 0):.0f} img/s"
    if "val" in record:
        line += f"  val Rank-1 {record['val']['rank1']:.1f} mAP {record['val']['mAP']:.1f}"
    quality = quality_keys(record)
    if quality:
        line += "  " + ", ".join(f"{k} {record[k]:g}" for k in quality)
    return line


def board_scalars(record: dict[str, Any]) -> dict[str, float]:
    """An epoch record as TensorBoard tags: loss/*, val/*, labels/* (label quality), lr, images_per_s."""
    out = {"lr": record["lr"], "images_per_s": record.get("images_per_s", 0.0)}
    out |= {f"loss/{k}": record[k] for k in loss_terms(record)}
    out |= {f"val/{k}": v for k, v in record.get("val", {}).items()}
    out |= {f"labels/{k}": record[k] for k in quality_keys(record)}
    return out


def board_writer() -> type:
    """TensorBoard's SummaryWriter, or a one-line error naming the missing extra (checked before a run
    writes anything)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        from vitool.errors import VitoolError

        raise VitoolError(
            None, "tensorboard = true needs the tensorboard package", "pip install 'vitool[tensorboard]'"
        ) from None
    return SummaryWriter


def plot_curves(log_file: Path, out: Path, meta: dict[str, Any] | None = None) -> None:
    """Three panels per epoch from log.jsonl: loss terms, held-out Rank-1 / mAP, label quality; ``meta``
    (provenance) goes into the PNG's text chunks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from vitool.io import atomic_output
    from vitool.show import save_png

    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    fig, (ax_loss, ax_val, ax_quality) = plt.subplots(1, 3, figsize=(13, 3.6), dpi=110)

    def series(ax, keys: list[str], get, names: dict[str, str] | None = None) -> None:
        for key in keys:
            points = [(r["epoch"], get(r, key)) for r in records if get(r, key) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=(names or {}).get(key, key))
        if ax.lines:
            ax.legend(fontsize=7)

    ordered = lambda pick: list(dict.fromkeys(k for r in records for k in pick(r)))  # noqa: E731
    series(ax_loss, ordered(loss_terms), lambda r, k: r.get(k))
    series(ax_val, ["rank1", "mAP"], lambda r, k: r["val"][k] if "val" in r else None)
    # some figures are fractions (ARI, precisions), others percentages: fractions are drawn x 100
    fractions = {k for k in ordered(quality_keys) if max(abs(r.get(k, 0)) for r in records) <= 1}
    series(
        ax_quality,
        ordered(quality_keys),
        lambda r, k: None if k not in r else r[k] * (100 if k in fractions else 1),
        names={k: f"{k} x100" for k in fractions},
    )
    ax_loss.set(xlabel="epoch", title="loss terms")
    ax_val.set(xlabel="epoch", ylabel="%", title="held-out identities (cross-modal)")
    ax_quality.set(xlabel="epoch", ylabel="%", title="label quality")
    if not ax_quality.lines:
        ax_quality.text(0.5, 0.5, "the method reports none", ha="center", va="center", transform=ax_quality.transAxes)
    for ax in (ax_loss, ax_val, ax_quality):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
    fig.tight_layout()
    with atomic_output(out, overwrite=True) as tmp:  # the run's own file, redrawn at the end of each run
        save_png(fig, tmp, meta or {})

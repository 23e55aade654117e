"""What every command shares: the Typer app, the choice lists and options several commands take, the
progress bars on stderr and the ways a result is printed (a line, a table, one JSON object)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vitool import __version__
from vitool.assign import METHODS as ASSOCIATIONS
from vitool.data.datasets import DATASETS, OFFICIAL_DATASETS, SPLITS
from vitool.engine import DEVICES
from vitool.evaluation import DIRECTIONS, MODES, PROTOCOLS, SHOTS
from vitool.methods.registry import methods
from vitool.models import BACKBONES, RELEASED_FORMATS

app = typer.Typer(
    name="vitool",
    help="Label-efficient visible-infrared person re-identification: stages that read and write HDF5 files.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def choices(name: str, *values: str) -> type[StrEnum]:
    """A string enum for Typer's choice validation and --help (usage errors exit 2)."""
    return StrEnum(name, {v: v for v in values})


Dataset = choices("Dataset", *DATASETS)
Official = choices("Official", *OFFICIAL_DATASETS)
Protocol = choices("Protocol", *PROTOCOLS)
Mode = choices("Mode", *MODES)
Shot = choices("Shot", *SHOTS)
Direction = choices("Direction", *DIRECTIONS)
Device = choices("Device", *DEVICES)
Backbone = choices("Backbone", *BACKBONES)
ReleasedFormat = choices("ReleasedFormat", "auto", *RELEASED_FORMATS)
AssignMethod = choices("AssignMethod", *ASSOCIATIONS)
Split = choices("Split", *SPLITS)
TrainMethod = choices("TrainMethod", *methods())  # vitool's own and those of installed plugins
# choices of modules that import numpy, written here again (tests/test_cli.py holds them equal)
InfraredModel = choices("InfraredModel", "auto", "nir", "thermal")  # data.synth.INFRARED_MODELS
ClusterMethod = choices("ClusterMethod", "dbscan", "kmeans")  # cluster.METHODS
Space = choices("Space", "visible", "infrared")  # assign.mult.SPACES
OtCost = choices("OtCost", "auto", "probs", "prototypes")  # assign.ot.COSTS
TableFormat = choices("TableFormat", "table", "markdown", "csv")  # compare.STYLES

Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vitool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """vitool: extract-features -> cluster -> assign-labels -> train -> evaluate, as files."""


DatasetOpt = Annotated[Dataset, typer.Option(help="Dataset layout of --root (manifest: --root is the CSV file).")]
RootOpt = Annotated[Path, typer.Option(help="Dataset root folder (or manifest CSV).")]
TrialOpt = Annotated[int, typer.Option(help="RegDB trial 1..10 (its own train/test split).")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to compute.")]
FlipOpt = Annotated[
    bool | None,
    typer.Option(
        "--flip/--no-flip",
        help="Average each image's features with its mirror image (default: the checkpoint's test recipe: "
        "its method's released test, on for dcl, pclhd, mult and experts, off for supervised, otla and "
        "visible; for a converted checkpoint, its repository's).",
    ),
]
BatchOpt = Annotated[int, typer.Option(help="Images per forward pass.")]
WorkersOpt = Annotated[int, typer.Option(help="DataLoader worker processes.")]
FeaturesArg = Annotated[Path, typer.Argument(help="Features file (.h5).")]
LabelsOut = Annotated[Path, typer.Option("-o", "--output", help="Labels file to write (.h5).")]


class Bars:
    """Rich progress bars on stderr for the stages' ``progress`` callback: one bar per (total, title),
    shown from the first call, so that input refused before the long work prints its one line alone."""

    def __init__(self, console=None) -> None:
        self.console, self.progress, self.task = console, None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, total: int | None, title: str):
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self.progress = Progress(*columns, console=self.console or Console(stderr=True), transient=True)
            self.progress.__enter__()
        task = self.progress.add_task(title, total=total)
        return lambda n=1: self.progress.advance(task, n)

    def show(self, done: int, total: int, title: str) -> None:
        """One bar at ``done`` of ``total`` under ``title`` (a training epoch's batches)."""
        if self.task is None:
            self(total, title)
            self.task = self.progress.task_ids[-1]
        self.progress.update(self.task, completed=done, total=total, description=title)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def report_table(title: str, written, as_json: bool) -> None:
    """A labels stage's figures as a table on stdout, or one JSON object with --json."""
    if as_json:
        emit_json(written.as_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in written.diagnostics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)

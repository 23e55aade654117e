"""The training-run commands: train, recipes, compare."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vitool.cli.common import (
    Backbone,
    Bars,
    Dataset,
    Device,
    JsonFlag,
    Overwrite,
    TableFormat,
    TrainMethod,
    app,
    emit_json,
)
from vitool.methods.registry import describe as describe_methods

# --------------------------------------------------------------------------------------------------- train


@app.command()
def train(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Run folder (new, or empty).")] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A TOML file of any options below; in it, base = 'FILE' starts from FILE."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run in this folder from its last.pt, on this machine's device (--device auto "
            "unless given); --epochs, --amp, --workers and --root (a moved dataset) may be given anew, any "
            "other option is refused."
        ),
    ] = None,
    dataset: Annotated[Dataset | None, typer.Option(help="Dataset layout of --root.")] = None,
    root: Annotated[str | None, typer.Option(help="Dataset root (or manifest CSV).")] = None,
    trial: Annotated[int | None, typer.Option(help="RegDB trial 1..10.")] = None,
    method: Annotated[
        TrainMethod | None,
        typer.Option(help="; ".join(f"{name}: {summary}" for name, summary in describe_methods().items()) + "."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="otla/visible: visible labels (e.g. vitool cluster); experts: per-modality labels "
            "(vitool weak-labels); none = from the ground truth."
        ),
    ] = None,
    backbone: Annotated[Backbone | None, typer.Option(help="resnet50 (AGW) or a CPU backbone.")] = None,
    pretrained: Annotated[str | None, typer.Option(help="imagenet, none, or a .pth file.")] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start the network (and the method's heads) from this vitool checkpoint or run folder (its last.pt)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Number of epochs (AGW: 81).")] = None,
    lr: Annotated[
        float | None, typer.Option(help="Learning rate of the heads (backbone: x backbone_lr_factor).")
    ] = None,
    optimizer: Annotated[str | None, typer.Option(help="sgd (AGW) or adam.")] = None,
    batches_per_epoch: Annotated[int | None, typer.Option(help="0 = AGW's rule.")] = None,
    val_ids: Annotated[int | None, typer.Option(help="Training identities held out to choose best.pt.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random.")] = None,
    device: Annotated[Device | None, typer.Option(help="auto, cpu or cuda.")] = None,
    amp: Annotated[str | None, typer.Option(help="auto, none, fp16 or bf16.")] = None,
    workers: Annotated[int | None, typer.Option(help="DataLoader worker processes.")] = None,
    image_cache: Annotated[str | None, typer.Option(help="Read images from this `vitool cache` file.")] = None,
    tensorboard: Annotated[
        bool | None,
        typer.Option("--tensorboard", help="Also write TensorBoard events to RUN/tensorboard (extra: tensorboard)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="KEY=VALUE for any key of `vitool recipes --keys` (TOML value), e.g. grl_step=5; repeatable."
        ),
    ] = None,
) -> None:
    """Train a model (config file keys = these options), evaluate the last epoch on the test split.

    Every key (`vitool recipes --keys` lists them with their types and defaults) is checked before the
    run folder is made. The folder has one writer; a run that fails before its first checkpoint leaves
    nothing behind."""
    from rich.console import Console

    from vitool import stages
    from vitool.engine.config import parse_assignments

    if (output is None) == (resume is None):
        raise typer.BadParameter("give either -o RUN_DIR for a new run or --resume RUN_DIR")
    given = dict(dataset=dataset, root=root, trial=trial, method=method, labels=labels, backbone=backbone)
    given |= dict(pretrained=pretrained, epochs=epochs, lr=lr, optimizer=optimizer, batches_per_epoch=batches_per_epoch)
    given |= dict(val_ids=val_ids, seed=seed, device=device, amp=amp, workers=workers, image_cache=image_cache)
    given |= dict(tensorboard=tensorboard, init=init)
    overrides = {k: v.value if isinstance(v, StrEnum) else v for k, v in given.items()}
    overrides |= parse_assignments(set_ or [])
    console = Console(stderr=True, soft_wrap=True)  # a log file keeps each epoch's line whole
    with Bars(console) as bars:
        results = stages.train(
            output,
            resume=resume,
            config=config,
            overrides=overrides,
            log=lambda line: console.print(line, markup=False, highlight=False),
            progress=lambda step, steps, epoch, epochs: bars.show(step, steps, f"epoch {epoch}/{epochs}"),
        )
    if results is not None:  # process 0 of a distributed run, or a single process
        emit_json(results)


@app.command()
def recipes(
    name: Annotated[str | None, typer.Argument(help="Print this recipe (to copy and edit); omit to list them.")] = None,
    keys: Annotated[
        bool, typer.Option("--keys", help="List every config key instead: type, default, allowed values, meaning.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """The training recipes that ship with vitool: each paper's released settings and the CPU demos.

    `vitool train --config NAME` uses one by name (a file of that name in the current folder wins), and a
    config file may start from one with base = "NAME".
    """
    from vitool import stages
    from vitool.engine.config import key_lines, recipe_lines

    found = stages.recipes(name, keys)
    if as_json:
        emit_json(found)
    elif name is None or keys:
        typer.echo("\n".join(key_lines(found) if keys else recipe_lines(found)))
    else:
        typer.echo(found["text"], nl=False)


# ------------------------------------------------------------------------------------------------- compare


@app.command()
def compare(
    groups: Annotated[
        list[str], typer.Argument(help="NAME=RUN,RUN,... : a group of run folders (one per seed).", show_default=False)
    ],
    baseline: Annotated[
        str | None, typer.Option(help="Group to pair the others with, by seed: differences and 95% intervals.")
    ] = None,
    table_format: Annotated[TableFormat, typer.Option("--format", help="Table style.")] = TableFormat.table,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw Rank-1 and mAP per group (paired differences with --baseline) here.")
    ] = None,
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Compare groups of training runs: mean ± sd over seeds of every metric and label-quality figure,
    and with --baseline the paired difference per seed, its mean and 95% confidence interval."""
    from vitool import stages
    from vitool.compare import render

    parsed: dict[str, list[str]] = {}
    for item in groups:
        name, sep, paths = item.partition("=")
        if not sep or not name or not paths or name in parsed:
            raise typer.BadParameter(f"'{item}': give each group once as NAME=RUN[,RUN...]")
        parsed[name] = [p for p in paths.split(",") if p]
    result = stages.compare(parsed, baseline, plot, overwrite)
    for warning in result.get("warnings", []):
        typer.echo(f"vitool: warning: {warning}", err=True)
    if as_json:
        emit_json(result)
    else:
        typer.echo(render(result, table_format.value))

"""The data commands: synth, weak-labels, cache, check-dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vitool.cli.common import (
    Bars,
    DatasetOpt,
    InfraredModel,
    JsonFlag,
    LabelsOut,
    Official,
    Overwrite,
    RootOpt,
    Split,
    TrialOpt,
    app,
    emit_json,
)

# --------------------------------------------------------------------------------------------------- synth


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="New folder to write the dataset into (must not exist or be empty).")],
    layout: Annotated[Official, typer.Option(help="Official layout to write.")] = Official.sysu,
    train_ids: Annotated[int, typer.Option(help="Training identities (SYSU: train + val; SYSU-MM01 has 395).")] = 256,
    test_ids: Annotated[int, typer.Option(help="Test identities (SYSU-MM01 has 96).")] = 96,
    images: Annotated[int, typer.Option(help="Images per identity and camera (RegDB: twice this per modality).")] = 3,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same files.")] = 0,
    ir_material: Annotated[
        float,
        typer.Option(
            help="Share of a garment's infrared brightness set by its material rather than its dye: "
            "0 narrows the modality gap (colour predicts infrared), 1 widens it (no colour trace)."
        ),
    ] = 0.85,
    fill: Annotated[
        float,
        typer.Option(
            help="The person's height as a share of the crop, as a detector's box frames a pedestrian; "
            "0: the first generator's loose crops (a small figure on a large scene)."
        ),
    ] = 0.95,
    infrared: Annotated[
        InfraredModel,
        typer.Option(
            help="Infrared physics: nir (grey reflectance under active illumination: weave, prints and folds "
            "carry over, dyes mostly vanish), thermal (warm bodies on a cool scene), or auto (RegDB thermal, "
            "SYSU and LLCM nir)."
        ),
    ] = InfraredModel.auto,
    material_look: Annotated[
        float,
        typer.Option(help="How much a garment's material (weave, sheen) shows in the colour image; 0: not at all."),
    ] = 1.0,
    ir_degrade: Annotated[
        float,
        typer.Option(
            help="The infrared sensors' lower resolution: (1 + this) times coarser images, as night-mode "
            "surveillance cameras record; 0: the visible cameras' resolution."
        ),
    ] = 0.5,
    ir_contrast: Annotated[
        float,
        typer.Option(
            help="Each infrared camera's own contrast curve: a gamma of exp(this x U(-0.5, 0.5)) per camera; 0: none."
        ),
    ] = 0.5,
    as_json: JsonFlag = False,
) -> None:
    """Write a procedural visible-infrared pedestrian dataset in an official layout.

    The folder's vitool-synth.json records the generator version and these options; the same options
    give byte-identical files (docs/synthetic.md)."""
    from vitool import stages
    from vitool.data.synth import SynthConfig

    config = SynthConfig(
        layout.value, train_ids=train_ids, test_ids=test_ids, images=images, seed=seed, ir_material=ir_material,
        fill=fill, infrared=infrared.value, material_look=material_look, ir_degrade=ir_degrade,
        ir_contrast=ir_contrast,
    )  # fmt: skip
    with Bars() as bars:
        made = stages.synth(out, config, bars)
    if as_json:
        emit_json(made)
    else:
        typer.echo(f"wrote {made['images']} images of {made['identities']} identities to {out} ({layout.value} layout)")


@app.command("weak-labels")
def weak_labels_command(
    dataset: DatasetOpt,
    root: RootOpt,
    output: LabelsOut,
    trial: TrialOpt = 1,
    seed: Annotated[int, typer.Option(help="Seed of the per-modality renumbering.")] = 0,
    keep_infrared: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of infrared identities that keep labels (the rest: -1).")
    ] = 1.0,
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Weak labels of the training split: identities inside each modality, no cross-modal link.

    Each modality's identities are renumbered by its own seeded permutation into intra_label; label
    is -1. Input of `vitool train --method experts --labels` and `assign-labels --method experts`.
    """
    from vitool import stages

    summary = stages.weak_labels(dataset.value, root, output, trial, seed, keep_infrared, overwrite)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(
            f"wrote weak labels of {summary['images']} images ({summary['visible_ids']} visible, "
            f"{summary['infrared_ids']} infrared identities) to {output}"
        )


# --------------------------------------------------------------------------------------------------- cache


@app.command()
def cache(
    dataset: DatasetOpt,
    root: RootOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Image cache file to write (.h5).")],
    split: Annotated[Split, typer.Option(help="Which split's images.")] = Split.train,
    trial: TrialOpt = 1,
    height: Annotated[int, typer.Option(help="Image height of the model (128 for the CPU backbones).")] = 288,
    width: Annotated[int, typer.Option(help="Image width of the model (64 for the CPU backbones).")] = 144,
    overwrite: Overwrite = False,
) -> None:
    """Pre-resize a split's images into one uint8 HDF5 file (train/extract-features --image-cache)."""
    from vitool import stages

    with Bars() as bars:
        count = stages.cache(dataset.value, root, output, split.value, trial, height, width, overwrite, bars)
    typer.echo(f"wrote {count} images at {height}x{width} to {output}", err=True)


@app.command("check-dataset")
def check_dataset_command(
    dataset: Annotated[Official, typer.Option(help="The official dataset --root should be a copy of.")],
    root: Annotated[Path, typer.Option(help="The dataset root folder.")],
    decode: Annotated[
        bool, typer.Option("--decode/--no-decode", help="Decode every image (--no-decode: read headers only).")
    ] = True,
    as_json: JsonFlag = False,
) -> None:
    """Compare a dataset copy with the official release before training: folders, id files, idx files,
    counts, identities in two splits, empty identities, swapped modalities, images that do not decode.

    One line per difference; exit code 0 when the copy matches, 1 otherwise. On `vitool synth` data the
    counts are synthetic, so only the structure is checked.
    """
    from vitool import stages

    with Bars() as bars:
        report = stages.check_dataset(dataset.value, root, decode, bars)
    if as_json:
        emit_json(report.as_dict())
    else:
        typer.echo("\n".join(report.lines()))
    if report.problems:
        raise typer.Exit(1)

"""The feature-file commands: extract-features, evaluate, convert, export, show, info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vitool.cli.common import (
    Backbone,
    Bars,
    BatchOpt,
    Dataset,
    DatasetOpt,
    Device,
    DeviceOpt,
    Direction,
    FlipOpt,
    JsonFlag,
    Mode,
    Overwrite,
    Protocol,
    ReleasedFormat,
    RootOpt,
    Shot,
    Split,
    TrialOpt,
    WorkersOpt,
    app,
    emit_json,
)

# ----------------------------------------------------------------------------------------- extract-features


@app.command("extract-features")
def extract_features(
    dataset: DatasetOpt,
    root: RootOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="Features file to write (.h5).")],
    split: Annotated[
        Split, typer.Option(help="train, or test (query and gallery pools of both modalities).")
    ] = Split.test,
    trial: TrialOpt = 1,
    checkpoint: Annotated[Path | None, typer.Option(help="A vitool checkpoint (overrides --backbone).")] = None,
    backbone: Annotated[Backbone, typer.Option(help="Backbone when no checkpoint is given.")] = Backbone.resnet50,
    pretrained: Annotated[
        str, typer.Option(help="imagenet, none, or a .pth file of torchvision weights.")
    ] = "imagenet",
    height: Annotated[
        int | None, typer.Option(help="Input height (default: the checkpoint's; 288 for resnet50, else 128).")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="Input width (default: the checkpoint's; 144 for resnet50, else 64).")
    ] = None,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = Device.auto,
    flip: FlipOpt = None,
    workers: WorkersOpt = 0,
    image_cache: Annotated[Path | None, typer.Option(help="Read images from this `vitool cache` file.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for layers without pretrained weights.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Extract post-BN and pre-BN features of a dataset split into a features file."""
    from vitool import stages

    with Bars() as bars:
        fs = stages.extract_features(
            dataset.value, root, output, split=split.value, trial=trial, checkpoint=checkpoint,
            backbone=backbone.value, pretrained=pretrained, height=height, width=width, batch_size=batch_size,
            device=device.value, flip=flip, workers=workers, image_cache=image_cache, seed=seed,
            overwrite=overwrite, progress=bars,
        )  # fmt: skip
    typer.echo(f"wrote {len(fs)} x {fs.features.shape[1]} features to {output}", err=True)


# ------------------------------------------------------------------------------------------------ evaluate


@app.command()
def evaluate(
    features: Annotated[Path | None, typer.Argument(help="Features file (omit with --checkpoint).")] = None,
    protocol: Annotated[Protocol | None, typer.Option(help="Test protocol (default: from the file's dataset).")] = None,
    mode: Annotated[Mode, typer.Option(help="SYSU gallery: all-search or indoor-search.")] = Mode.all,
    shot: Annotated[Shot, typer.Option(help="Gallery images per identity and camera: 1 or 10.")] = Shot.single,
    direction: Annotated[
        Direction | None, typer.Option(help="v2i or i2v (default: sysu/llcm/generic i2v, regdb v2i).")
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Random gallery trials (SYSU, LLCM), seeds 0..N-1.")] = 10,
    deen_swap: Annotated[
        bool, typer.Option("--deen-swap", help="LLCM v2i as DEEN's test.py: sampled NIR probes.")
    ] = False,
    feature: Annotated[str, typer.Option(help="Dataset to score: features or features_pre_bn.")] = "features",
    cross_dataset: Annotated[
        bool,
        typer.Option(
            "--cross-dataset",
            help="Allow a protocol of another dataset than the file's (recorded in the results); "
            "without it such a protocol is refused.",
        ),
    ] = False,
    as_json: JsonFlag = False,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the results JSON here.")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write a CMC curve PNG here.")] = None,
    device: Annotated[
        Device, typer.Option(help="Where to score: cpu, or cuda for the products (auto = cpu, no torch import).")
    ] = Device.auto,
    checkpoint: Annotated[Path | None, typer.Option(help="Extract with this checkpoint, then score.")] = None,
    dataset: Annotated[Dataset | None, typer.Option(help="With --checkpoint: the dataset layout of --root.")] = None,
    root: Annotated[Path | None, typer.Option(help="With --checkpoint: the dataset root.")] = None,
    trial: TrialOpt = 1,
    flip: FlipOpt = None,
    batch_size: BatchOpt = 64,
    rerank: Annotated[
        bool, typer.Option("--rerank", help="k-reciprocal re-ranking of each trial (Zhong et al., CVPR 2017).")
    ] = False,
    k1: Annotated[int, typer.Option(min=1, help="With --rerank: k-reciprocal neighbours.")] = 20,
    k2: Annotated[int, typer.Option(min=1, help="With --rerank: neighbours of the local query expansion.")] = 6,
    lambda_: Annotated[
        float, typer.Option("--lambda", min=0.0, max=1.0, help="With --rerank: weight of the original distance.")
    ] = 0.3,
    overwrite: Overwrite = False,
) -> None:
    """Score features with a literature protocol: Rank-1/5/10/20, mAP, mINP, averaged over trials."""
    from vitool import stages

    if (features is None) == (checkpoint is None):
        raise typer.BadParameter("give either a FEATURES file or --checkpoint with --dataset and --root")
    if checkpoint is not None and (dataset is None or root is None):
        raise typer.BadParameter("--checkpoint needs --dataset and --root")
    reranking = None
    if rerank:
        from vitool.evaluation.rerank import Rerank

        reranking = Rerank(k1, k2, lambda_)
    with Bars() as bars:
        results = stages.evaluate(
            features, checkpoint=checkpoint, dataset=dataset and dataset.value, root=root, trial=trial, flip=flip,
            batch_size=batch_size, protocol=protocol and protocol.value, mode=mode.value, shot=shot.value,
            direction=direction and direction.value, trials=trials, deen_swap=deen_swap, feature=feature,
            cross_dataset=cross_dataset, device=device.value, rerank=reranking, output=output, plot=plot,
            overwrite=overwrite, progress=bars,
        )  # fmt: skip
    if as_json:
        emit_json(results)
    else:
        typer.echo(
            f"{stages.describe_protocol(results, reranking)}: Rank-1 {results['rank1']:.2f}  "
            f"Rank-5 {results['rank5']:.2f}  Rank-10 {results['rank10']:.2f}  Rank-20 {results['rank20']:.2f}  "
            f"mAP {results['mAP']:.2f}  mINP {results['mINP']:.2f}  ({len(results['trials'])} trial(s))"
        )


# ------------------------------------------------------------------------------------------------- convert


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="A checkpoint saved by a released repository's own code.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The vitool checkpoint to write (.pt).")],
    from_: Annotated[
        ReleasedFormat, typer.Option("--from", help="The repository whose format SOURCE is (auto: from its keys).")
    ] = ReleasedFormat.auto,
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Convert a released AGW, PCLHD, MULT, OTLA or WSL checkpoint into a vitool checkpoint.

    The network and its repository's test recipe (288x144, flip averaging, L2) travel with it, so
    `extract-features --checkpoint OUT` and `evaluate --checkpoint OUT` reproduce that repository's test
    features. Keys no test feature reads (classifiers, discriminators) are dropped and listed.
    """
    from vitool import stages

    summary = stages.convert(source, output, from_.value, overwrite)
    if as_json:
        emit_json(summary)
    else:
        chosen = f"{summary['format']} (detected)" if from_ == ReleasedFormat.auto else summary["format"]
        model = summary["model"]
        recipe = f"flip {model['test_flip']}, l2 {'on' if model['test_l2'] else 'off'}"
        typer.echo(
            f"converted {source} as {chosen} to {output}: {model['height']}x{model['width']}, "
            f"{recipe}; dropped {summary['dropped_keys']} unused keys",
            err=True,
        )


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A vitool checkpoint (trained, or made by `vitool convert`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="The ONNX file to write (.onnx).")],
    opset: Annotated[int, typer.Option(min=13, help="ONNX opset version.")] = 17,
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Export the checkpoint's test embedding to ONNX (needs the `export` extra: onnx, onnxruntime).

    Inputs: `images` float32 [batch, 3, H, W], RGB in [0, 1] normalised with the ImageNet mean and std,
    at the checkpoint's input size; `modality` int64 [batch], 0 visible, 1 infrared (absent for one-stream
    networks). Output: `embedding` float32 [batch, dim], the test recipe (flip, L2) included. The export is
    checked by running it in onnxruntime against torch.
    """
    from vitool import stages

    report = stages.export(checkpoint, output, opset, overwrite)
    if as_json:
        emit_json(report)
    else:
        height, width = report["input_size"]
        typer.echo(
            f"exported {checkpoint} to {output}: inputs {', '.join(report['inputs'])} at {height}x{width}, "
            f"embedding {report['embedding_dim']}-d; onnxruntime matches torch within "
            f"{report['max_abs_difference']:.1e}",
            err=True,
        )


# ------------------------------------------------------------------------------------------------ show, info


show_app = typer.Typer(help="Pictures of a features file: rank lists, embedding maps.", no_args_is_help=True)
app.add_typer(show_app, name="show")


@show_app.command("ranks")
def show_ranks(
    features: Annotated[Path, typer.Argument(help="Features file (e.g. a run's test_features.h5).")],
    root: Annotated[Path, typer.Option(help="The dataset root the file's image paths are relative to.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write.")],
    protocol: Annotated[Protocol | None, typer.Option(help="Protocol (default: from the file's dataset).")] = None,
    mode: Annotated[Mode, typer.Option(help="SYSU gallery: all-search or indoor-search.")] = Mode.all,
    direction: Annotated[Direction | None, typer.Option(help="v2i or i2v (default: the protocol's).")] = None,
    top: Annotated[int, typer.Option(min=1, help="Gallery images per query.")] = 10,
    random_queries: Annotated[int, typer.Option("--random", min=0, help="Random queries (seeded).")] = 4,
    best: Annotated[int, typer.Option(min=0, help="Queries with the highest AP.")] = 1,
    worst: Annotated[int, typer.Option(min=0, help="Queries with the lowest AP.")] = 1,
    query: Annotated[list[str] | None, typer.Option(help="A query image path (as in the file); repeatable.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random queries.")] = 0,
    cross_dataset: Annotated[
        bool, typer.Option("--cross-dataset", help="Allow a protocol of another dataset than the file's.")
    ] = False,
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Query images of one modality with their top-k gallery images of the other (trial 0 of the
    protocol, its exclusion rule applied); true matches framed green, others red."""
    from vitool import stages

    rows = stages.show_ranks(
        features, root, output, protocol=protocol and protocol.value, mode=mode.value,
        direction=direction and direction.value, top=top, random_queries=random_queries, best=best, worst=worst,
        queries=query, seed=seed, cross_dataset=cross_dataset, overwrite=overwrite,
    )  # fmt: skip
    if as_json:
        emit_json({"output": str(output), "queries": rows})
    else:
        typer.echo(f"wrote {len(rows)} rank lists to {output}")


@show_app.command("embedding")
def show_embedding(
    features: Annotated[Path, typer.Argument(help="Features file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write.")],
    labels: Annotated[
        Path | None, typer.Option(help="Colour by this labels file's label (pseudo labels) instead of identity.")
    ] = None,
    method: Annotated[str, typer.Option(help="auto (t-SNE up to 5,000 points, else PCA), tsne or pca.")] = "auto",
    max_points: Annotated[int, typer.Option(min=10, help="Draw a seeded sample of at most this many rows.")] = 5000,
    feature: Annotated[str, typer.Option(help="features or features_pre_bn.")] = "features",
    seed: Annotated[int, typer.Option(help="Seed of t-SNE and of the sample.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """A 2-D map of the features, coloured by identity (or pseudo label), circles visible, triangles infrared."""
    from vitool import stages

    made = stages.show_embedding(features, output, labels, method, max_points, feature, seed, overwrite)
    typer.echo(f"wrote a {made['map']} map of {made['rows']} rows to {output}")


@app.command()
def info(
    file: Annotated[Path, typer.Argument(help="A features or labels file.")],
    as_json: JsonFlag = False,
) -> None:
    """Summarise a stage file: kind, rows, modalities, identities, provenance."""
    from vitool import stages

    summary = stages.info(file)
    if as_json:
        emit_json(summary)
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        typer.echo(f"{key:>18}: {value}")

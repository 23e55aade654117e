"""The ``vitool`` command line: each command parses its options, calls one stage of ``vitool.stages``
(or the library function behind a helper) and prints the result.

Start-up stays light: typer, the standard library and vitool's numpy-free choice lists; each command
imports what it needs. Bad input raises ``VitoolError`` anywhere below, which ``main`` prints as one
line on stderr with exit code 1; usage errors are Typer's (exit code 2).
"""

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
from vitool.errors import VitoolError
from vitool.evaluation import DIRECTIONS, MODES, PROTOCOLS, SHOTS
from vitool.methods.registry import describe as describe_methods
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


def _choices(name: str, *values: str) -> type[StrEnum]:
    """A string enum for Typer's choice validation and --help (usage errors exit 2)."""
    return StrEnum(name, {v: v for v in values})


Dataset = _choices("Dataset", *DATASETS)
Official = _choices("Official", *OFFICIAL_DATASETS)
Protocol = _choices("Protocol", *PROTOCOLS)
Mode = _choices("Mode", *MODES)
Shot = _choices("Shot", *SHOTS)
Direction = _choices("Direction", *DIRECTIONS)
Device = _choices("Device", *DEVICES)
Backbone = _choices("Backbone", *BACKBONES)
ReleasedFormat = _choices("ReleasedFormat", "auto", *RELEASED_FORMATS)
AssignMethod = _choices("AssignMethod", *ASSOCIATIONS)
Split = _choices("Split", *SPLITS)
TrainMethod = _choices("TrainMethod", *methods())  # vitool's own and those of installed plugins
# choices of modules that import numpy, written here again (tests/test_cli.py holds them equal)
InfraredModel = _choices("InfraredModel", "auto", "nir", "thermal")  # data.synth.INFRARED_MODELS
ClusterMethod = _choices("ClusterMethod", "dbscan", "kmeans")  # cluster.METHODS
Space = _choices("Space", "visible", "infrared")  # assign.mult.SPACES
OtCost = _choices("OtCost", "auto", "probs", "prototypes")  # assign.ot.COSTS
TableFormat = _choices("TableFormat", "table", "markdown", "csv")  # compare.STYLES

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


class _Bars:
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


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


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
    from dataclasses import asdict

    from vitool.data.synth import SynthConfig, generate

    options = (train_ids, test_ids, images, seed, ir_material, fill, infrared.value, material_look, ir_degrade)
    config = SynthConfig(layout.value, *options, ir_contrast)
    with _Bars() as bars:
        counts = generate(out, config, progress=bars(train_ids + test_ids, f"synth {layout.value}"))
    if as_json:
        _emit_json({"root": str(out), **asdict(config), **counts})
    else:
        typer.echo(
            f"wrote {counts['images']} images of {counts['identities']} identities to {out} ({layout.value} layout)"
        )


# ----------------------------------------------------------------------------------------- extract-features


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

    with _Bars() as bars:
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
    with _Bars() as bars:
        results = stages.evaluate(
            features, checkpoint=checkpoint, dataset=dataset and dataset.value, root=root, trial=trial, flip=flip,
            batch_size=batch_size, protocol=protocol and protocol.value, mode=mode.value, shot=shot.value,
            direction=direction and direction.value, trials=trials, deen_swap=deen_swap, feature=feature,
            cross_dataset=cross_dataset, device=device.value, rerank=reranking, output=output, plot=plot,
            overwrite=overwrite, progress=bars,
        )  # fmt: skip
    if as_json:
        _emit_json(results)
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
        _emit_json(summary)
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
        _emit_json(report)
    else:
        height, width = report["input_size"]
        typer.echo(
            f"exported {checkpoint} to {output}: inputs {', '.join(report['inputs'])} at {height}x{width}, "
            f"embedding {report['embedding_dim']}-d; onnxruntime matches torch within "
            f"{report['max_abs_difference']:.1e}",
            err=True,
        )


# ------------------------------------------------------------------------------------- cluster, assign-labels


def _report(title: str, written, as_json: bool) -> None:
    """A labels stage's figures as a table on stdout, or one JSON object with --json."""
    if as_json:
        _emit_json(written.as_dict())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in written.diagnostics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


FeaturesArg = Annotated[Path, typer.Argument(help="Features file (.h5).")]
LabelsOut = Annotated[Path, typer.Option("-o", "--output", help="Labels file to write (.h5).")]


@app.command()
def cluster(
    features: FeaturesArg,
    output: LabelsOut,
    method: Annotated[ClusterMethod, typer.Option(help="dbscan on k-reciprocal Jaccard, or k-means.")] = "dbscan",
    joint: Annotated[bool, typer.Option("--joint", help="Cluster both modalities together.")] = False,
    k1: Annotated[int, typer.Option(min=2, help="Jaccard: neighbours for k-reciprocal sets.")] = 30,
    k2: Annotated[int, typer.Option(min=1, help="Jaccard: neighbours for query expansion.")] = 6,
    eps: Annotated[float, typer.Option(min=0.0, max=1.0, help="DBSCAN radius on the Jaccard distance.")] = 0.6,
    min_samples: Annotated[int, typer.Option(min=1, help="DBSCAN core-point size.")] = 4,
    k: Annotated[int, typer.Option(help="k-means: number of clusters (per modality unless --joint).")] = 0,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
    device: Annotated[Device, typer.Option(help="kNN on the GPU; k-means there if faiss has a GPU.")] = "auto",
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Pseudo labels per modality (or --joint): Jaccard + DBSCAN (outliers -1) or k-means."""
    from vitool import stages
    from vitool.cluster import ClusterConfig

    config = ClusterConfig(method.value, k1, k2, eps, min_samples, k, joint, seed, device.value)
    _report(f"cluster {method.value} -> {output}", stages.cluster(features, output, config, overwrite), as_json)


@app.command("assign-labels")
def assign_labels(
    features: FeaturesArg,
    labels: Annotated[Path, typer.Option("--labels", help="Per-modality labels (intra_label, else label).")],
    output: LabelsOut,
    method: Annotated[
        AssignMethod, typer.Option(help="ot (OTLA), mult (MULT transfer), experts (CRE) or hungarian (PGM).")
    ],
    lam: Annotated[float, typer.Option(help="ot: Sinkhorn power lambda (entropy 1/lambda).")] = 25.0,
    temperature: Annotated[float, typer.Option(help="ot: softmax temperature on cosine to visible centres.")] = 0.1,
    cost: Annotated[OtCost, typer.Option(help="ot: probs from the features file, or prototypes.")] = "auto",
    sharpen: Annotated[float, typer.Option(help="experts: logits are multiplied by this before the softmax.")] = 3.0,
    space: Annotated[Space, typer.Option(help="mult: the label space both modalities end in.")] = "visible",
    alpha: Annotated[float, typer.Option(help="mult: weight of the initial labels in the fixed point.")] = 0.2,
    device: Annotated[Device, typer.Option(help="mult: kernel, Sinkhorn, transfer and kNN on the GPU.")] = "auto",
    as_json: JsonFlag = False,
    overwrite: Overwrite = False,
) -> None:
    """Put both modalities into one label space from per-modality labels."""
    from vitool import stages

    written = stages.assign_labels(
        features, labels, output, method.value, overwrite, lam=lam, temperature=temperature, cost=cost.value,
        sharpen=sharpen, space=space.value, alpha=alpha, device=device.value,
    )  # fmt: skip
    _report(f"assign-labels {method.value} -> {output}", written, as_json)


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
        _emit_json(summary)
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

    with _Bars() as bars:
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
    from vitool.data.check import check_dataset, image_count

    total = image_count(dataset.value, root)
    with _Bars() as bars:
        report = check_dataset(dataset.value, root, decode, progress=bars(total, f"check {dataset.value}"))
    if as_json:
        _emit_json(report.as_dict())
    else:
        typer.echo("\n".join(report.lines()))
    if report.problems:
        raise typer.Exit(1)


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
    with _Bars(console) as bars:
        results = stages.train(
            output,
            resume=resume,
            config=config,
            overrides=overrides,
            log=lambda line: console.print(line, markup=False, highlight=False),
            progress=lambda step, steps, epoch, epochs: bars.show(step, steps, f"epoch {epoch}/{epochs}"),
        )
    if results is not None:  # process 0 of a distributed run, or a single process
        _emit_json(results)


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
    from vitool.engine.config import describe_recipe, describe_recipes, key_lines, key_reference, recipe_lines
    from vitool.engine.recipes import recipe_path

    if keys or name is None:
        rows = key_reference() if keys else describe_recipes()
        if as_json:
            _emit_json(rows)
        else:
            typer.echo("\n".join(key_lines(rows) if keys else recipe_lines(rows)))
    else:
        summary = describe_recipe(name)  # an unknown name is one line naming the recipes there are
        text = recipe_path(name).read_text()
        if as_json:
            _emit_json({**vars(summary), "path": str(recipe_path(name)), "text": text})
        else:
            typer.echo(text, nl=False)


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
        _emit_json(result)
    else:
        typer.echo(render(result, table_format.value))


# ---------------------------------------------------------------------------------------------------- info


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
        _emit_json({"output": str(output), "queries": rows})
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
    from vitool.io import summarise

    summary = summarise(file)
    if as_json:
        _emit_json(summary)
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        typer.echo(f"{key:>18}: {value}")


RUNNING = False  # set while a command runs: its files record this command line (io.make_provenance)


def main() -> None:
    global RUNNING
    RUNNING = True
    try:
        app()
    except VitoolError as err:
        sys.stderr.write(f"vitool: error: {err.line()}\n")
        sys.exit(1)
    except OSError as err:  # the machine said no where no writer expected it (a disk full mid-read, a lost mount)
        fix = "check the path, its permissions and the disk"
        where = f"{err.filename}: " if err.filename else ""
        sys.stderr.write(f"vitool: error: {where}{err.strerror or err}; {fix}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("vitool: interrupted\n")
        sys.exit(130)
    finally:
        RUNNING = False

"""The ``vitool`` command line: thin Typer commands over the library.

Start-up stays light: only typer and the standard library are imported here; each command imports
what it needs. Bad input raises ``VitoolError`` anywhere below, which ``main`` prints as one line on
stderr with exit code 1; usage errors are Typer's (exit code 2).
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from vitool import __version__
from vitool.errors import VitoolError
from vitool.methods.registry import describe as describe_methods
from vitool.methods.registry import methods

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


Dataset = _choices("Dataset", "sysu", "regdb", "llcm", "manifest")
Layout = _choices("Layout", "sysu", "regdb", "llcm")
InfraredModel = _choices("InfraredModel", "auto", "nir", "thermal")
Protocol = _choices("Protocol", "sysu", "regdb", "llcm", "generic")
Split = _choices("Split", "train", "test")
Device = _choices("Device", "auto", "cpu", "cuda")
Backbone = _choices("Backbone", "resnet50", "resnet18", "mobilenet_v2")
Mode = _choices("Mode", "all", "indoor")
Shot = _choices("Shot", "single", "multi")
Direction = _choices("Direction", "v2i", "i2v")
TrainMethod = _choices("TrainMethod", *methods())  # vitool's own and those of installed plugins

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


def _progress(total: int, what: str):
    """A rich progress bar on stderr; returns (context manager, advance callback)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(what, total=total)
    return progress, lambda n=1: progress.advance(task, n)


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=False) + "\n")


def _effective_config(**kwargs: Any) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else str(v) if isinstance(v, Path) else v) for k, v in kwargs.items()}


# --------------------------------------------------------------------------------------------------- synth


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="New folder to write the dataset into (must not exist or be empty).")],
    layout: Annotated[Layout, typer.Option(help="Official layout to write.")] = Layout.sysu,
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

    config = SynthConfig(
        layout.value,
        train_ids,
        test_ids,
        images,
        seed,
        ir_material,
        fill,
        infrared.value,
        material_look,
        ir_degrade,
        ir_contrast,
    )
    progress, advance = _progress(train_ids + test_ids, f"synth {layout.value}")
    with progress:
        counts = generate(out, config, progress=advance)
    summary = {"root": str(out), **asdict(config), **counts}
    if as_json:
        _emit_json(summary)
    else:
        typer.echo(
            f"wrote {counts['images']} images of {counts['identities']} identities to {out} ({layout.value} layout)"
        )


# ----------------------------------------------------------------------------------------- extract-features


def _extract(
    dataset: Dataset,
    root: Path,
    split: str,
    trial: int,
    make_model,
    device: Device,
    batch_size: int,
    flip: bool | None,
    workers: int,
    image_cache: Path | None = None,
):
    """Load the split, then build the model and extract with a progress bar: (model, FeatureSet, listing hash).

    The split is loaded first so that a bad dataset root fails before any model or weights are touched.
    """
    from vitool.data.datasets import image_root, listing_sha256, load_split
    from vitool.devices import resolve_device
    from vitool.features import extract_featureset

    samples = load_split(dataset.value, root, split, trial)
    base = image_root(dataset.value, root)
    model = make_model()
    cache = None
    if image_cache is not None:
        from vitool.data.cache import ImageCache

        cache = ImageCache(image_cache, model.config.height, model.config.width)
    attrs = {"dataset": dataset.value, "split": split, "trial": trial if dataset == Dataset.regdb else 0}
    progress, advance = _progress(len(samples), f"extract {dataset.value}/{split}")
    with progress:
        fs = extract_featureset(
            model,
            samples,
            base,
            attrs,
            resolve_device(device.value),
            batch_size,
            _flip_mode(flip, model),
            workers,
            on_batch=advance,
            cache=cache,
        )
    return model, fs, listing_sha256(samples, base)


def _flip_mode(flip: bool | None, model) -> str:
    """--flip / --no-flip over the model's test recipe: --flip keeps a recipe's own way of averaging."""
    recipe = model.config.test_flip
    if flip is None:
        return recipe
    return (recipe if recipe != "none" else "mean") if flip else "none"


DatasetOpt = Annotated[Dataset, typer.Option(help="Dataset layout of --root (manifest: --root is the CSV file).")]
RootOpt = Annotated[Path, typer.Option(help="Dataset root folder (or manifest CSV).")]
TrialOpt = Annotated[int, typer.Option(help="RegDB trial 1..10 (its own train/test split).")]
DeviceOpt = Annotated[Device, typer.Option(help="Where to compute.")]
FlipOpt = Annotated[
    bool | None,
    typer.Option(
        "--flip/--no-flip",
        help="Average each image's features with its mirror image (default: the checkpoint's test recipe, "
        "which is off for vitool's own checkpoints and on where a converted repository's test flips).",
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
    from vitool.io import check_output, make_provenance, sha256_file, write_features
    from vitool.models import build_model

    check_output(output, overwrite)
    model, fs, listing = _extract(
        dataset,
        root,
        split.value,
        trial,
        lambda: build_model(checkpoint, backbone.value, pretrained, height, width, seed),
        device,
        batch_size,
        flip,
        workers,
        image_cache,
    )
    config = _effective_config(
        dataset=dataset,
        root=root,
        split=split,
        trial=trial,
        checkpoint=checkpoint,
        backbone=model.config.backbone,
        pretrained=None if checkpoint else pretrained,
        model=model.config.to_dict(),
        batch_size=batch_size,
        flip=_flip_mode(flip, model),
    )
    provenance = make_provenance(
        config,
        seed=seed,
        inputs={"dataset_listing": listing},
        checkpoint=sha256_file(checkpoint) if checkpoint else None,
    )
    write_features(output, fs, provenance, overwrite)
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
    from vitool.evaluation.evaluate import evaluate_features, plot_cmc
    from vitool.evaluation.protocols import PROTOCOL_OF_DATASET, ProtocolSpec, check_protocol_fits
    from vitool.io import atomic_output, check_output, make_provenance, read_features, sha256_file

    for target in (output, plot):
        if target is not None:
            check_output(target, overwrite, inputs=(features, checkpoint))
    if (features is None) == (checkpoint is None):
        raise typer.BadParameter("give either a FEATURES file or --checkpoint with --dataset and --root")
    if checkpoint is not None:
        if dataset is None or root is None:
            raise typer.BadParameter("--checkpoint needs --dataset and --root")
        from vitool.models import build_model

        _, fs, _ = _extract(
            dataset,
            root,
            "test",
            trial,
            lambda: build_model(checkpoint),
            device,
            batch_size,
            flip,
            0,
        )
        source, digest = str(checkpoint), sha256_file(checkpoint)
    else:
        fs = read_features(features)
        source, digest = str(features), sha256_file(features)
    proto = protocol.value if protocol else PROTOCOL_OF_DATASET.get(str(fs.attrs.get("dataset")), "generic")
    check_protocol_fits(fs.attrs.get("dataset"), proto, source, cross_dataset, fs.attrs.get("split"))
    spec = ProtocolSpec(proto, mode.value, shot.value, direction.value if direction else None, trials, deen_swap)
    eval_device = "cpu"
    if device == Device.cuda:
        from vitool.devices import resolve_device

        eval_device = str(resolve_device("cuda"))  # a clear error when no GPU is visible
    reranking = None
    if rerank:
        from vitool.evaluation.rerank import Rerank

        reranking = Rerank(k1, k2, lambda_)
    results = evaluate_features(fs, spec, feature, eval_device, where=source, rerank=reranking)
    if cross_dataset:
        results["cross_dataset"] = {"features_dataset": fs.attrs.get("dataset"), "protocol": proto}
    config = dict(protocol=proto, mode=mode, shot=shot, direction=spec.resolved_direction(), trials=trials)
    config["cross_dataset"] = cross_dataset
    results["provenance"] = make_provenance(
        _effective_config(**config, rerank=results["reranked"]), inputs={source: digest}
    )
    if output is not None:
        with atomic_output(output, overwrite) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
    label = f"{proto}" + (f" {mode.value}" if proto == "sysu" else "") + f" {spec.resolved_direction()}"
    label += f" reranked (k1 {k1}, k2 {k2}, lambda {lambda_})" if rerank else ""
    if plot is not None:
        with atomic_output(plot, overwrite) as tmp:
            plot_cmc(results, tmp, f"CMC, {label} ({Path(source).name})")
    if as_json:
        _emit_json(results)
    else:
        typer.echo(
            f"{label}: Rank-1 {results['rank1']:.2f}  Rank-5 {results['rank5']:.2f}  Rank-10 {results['rank10']:.2f}  "
            f"Rank-20 {results['rank20']:.2f}  mAP {results['mAP']:.2f}  mINP {results['mINP']:.2f}  "
            f"({len(results['trials'])} trial(s))"
        )


# ------------------------------------------------------------------------------------------------- convert

ReleasedFormat = _choices("ReleasedFormat", "auto", "agw", "pclhd", "mult", "otla", "wsl")


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
    from vitool.io import check_output, make_provenance, sha256_file
    from vitool.models.convert import convert_file

    check_output(output, overwrite, inputs=(source,))
    provenance = make_provenance(
        _effective_config(source=source, format=from_),
        inputs={str(source): sha256_file(source)} if source.is_file() else {},
    )
    converted = convert_file(source, from_.value, output, provenance)
    summary = {
        "format": converted.format,
        "output": str(output),
        "dropped_keys": len(converted.dropped),
        "model": converted.model.config.to_dict(),
        "source": converted.source_meta,
    }
    if as_json:
        _emit_json(summary)
    else:
        chosen = f"{converted.format} (detected)" if from_ == ReleasedFormat.auto else converted.format
        config = converted.model.config
        recipe = f"flip {config.test_flip}, l2 {'on' if config.test_l2 else 'off'}"
        typer.echo(
            f"converted {source} as {chosen} to {output}: {config.height}x{config.width}, "
            f"{recipe}; dropped {len(converted.dropped)} unused keys",
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
    from vitool.io import atomic_output, make_provenance, sha256_file
    from vitool.models import build_model
    from vitool.models.export import export_onnx

    model = build_model(checkpoint)
    made = make_provenance({"opset": opset, "model": model.config.to_dict()}, checkpoint=sha256_file(checkpoint))
    with atomic_output(output, overwrite) as tmp:
        report = export_onnx(model, tmp, opset, made)
    report = {"output": str(output), **report}
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

ClusterMethod = _choices("ClusterMethod", "dbscan", "kmeans")
AssignMethod = _choices("AssignMethod", "ot", "mult", "experts", "hungarian")
Space = _choices("Space", "visible", "infrared")
OtCost = _choices("OtCost", "auto", "probs", "prototypes")


def _report(title: str, diagnostics: dict[str, Any], as_json: bool, extra: dict[str, Any]) -> None:
    """Diagnostics as a table on stdout, or one JSON object with --json."""
    if as_json:
        _emit_json({**extra, "diagnostics": diagnostics})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in diagnostics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)


def _write_labels(output: Path, fs, result, method: str, params: dict, inputs: dict, overwrite: bool):
    """Labels file + diagnostics for an Assignment-like result aligned with ``fs``."""
    from vitool.diagnostics import label_diagnostics, match_diagnostics
    from vitool.io import LabelSet, make_provenance, write_labels

    diagnostics = label_diagnostics(fs.pid, fs.modality, result.label)
    if result.intra_label is not None:
        rates, counts = match_diagnostics(fs.pid, fs.modality, result.intra_label, result.extra)
        merged = counts | rates  # each kind's pairs, precision and coverage together, as listed before
        diagnostics |= {k: merged[k] for k in sorted(merged, key=lambda k: k.rsplit("_", 1)[0])}
    ls = LabelSet(
        path=fs.path,
        modality=fs.modality,
        label=result.label,
        method=method,
        params=params,
        confidence=result.confidence,
        soft=result.soft,
        intra_label=result.intra_label,
        extra=result.extra,
        attrs={**result.attrs, "diagnostics": diagnostics},
    )
    write_labels(output, ls, make_provenance(params, seed=params.get("seed"), inputs=inputs), overwrite)
    return diagnostics


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
    from vitool.assign import Assignment
    from vitool.cluster import ClusterConfig, cluster_labels
    from vitool.io import check_output, read_features, sha256_file

    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    config = ClusterConfig(method.value, k1, k2, eps, min_samples, k, joint, seed, device.value)
    labels = cluster_labels(fs.features, fs.modality, config)
    result = Assignment(label=labels, intra_label=None if joint else labels)
    params = _effective_config(**vars(config))
    diagnostics = _write_labels(
        output, fs, result, method.value, params, {str(features): sha256_file(features)}, overwrite
    )
    _report(f"cluster {method.value} -> {output}", diagnostics, as_json, {"output": str(output), "params": params})


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
    from vitool.assign import assign
    from vitool.io import align_labels, check_output, read_features, read_labels, sha256_file

    check_output(output, overwrite, inputs=(features, labels))
    fs = read_features(features)
    ls = read_labels(labels)
    index = align_labels(fs, ls, labels)
    intra = (ls.intra_label if ls.intra_label is not None else ls.label)[index]
    params: dict[str, Any] = {"method": method.value}
    if method.value == "ot":
        params.update(lam=lam, temperature=temperature, cost=cost.value)
    if method.value == "experts":
        params.update(sharpen=sharpen)
    if method.value == "mult":
        params.update(space=space.value, alpha=alpha, device=device.value)
    result = assign(
        method.value,
        fs.features,
        fs.modality,
        intra,
        where=str(labels),
        probs=fs.probs,
        experts=fs.extra,
        **{k: v for k, v in params.items() if k != "method"},
    )
    inputs = {str(features): sha256_file(features), str(labels): sha256_file(labels)}
    diagnostics = _write_labels(output, fs, result, method.value, params, inputs, overwrite)
    _report(
        f"assign-labels {method.value} -> {output}",
        diagnostics,
        as_json,
        {"output": str(output), "params": params, **result.attrs},
    )


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
    import numpy as np

    from vitool.data.datasets import image_root, listing_sha256, load_split
    from vitool.data.weak import weak_labels
    from vitool.io import LabelSet, check_output, make_provenance, write_labels
    from vitool.modality import INFRARED

    check_output(output, overwrite)
    samples = load_split(dataset.value, root, "train", trial)
    pid = np.array([s.pid for s in samples], dtype=np.int64)
    modality = np.array([s.modality for s in samples], dtype=np.uint8)
    intra = weak_labels(pid, modality, seed, keep_infrared)
    params = {"dataset": dataset.value, "trial": trial, "seed": seed, "keep_infrared": keep_infrared}
    ls = LabelSet(
        path=np.array([s.path for s in samples], dtype=object),
        modality=modality,
        label=np.full(len(samples), -1, dtype=np.int64),
        method="weak",
        params=params,
        intra_label=intra,
    )
    listing = listing_sha256(samples, image_root(dataset.value, root))
    write_labels(output, ls, make_provenance(params, seed=seed, inputs={"dataset_listing": listing}), overwrite)
    summary = {
        "output": str(output),
        "images": len(samples),
        "visible_ids": int(len(np.unique(intra[(modality != INFRARED) & (intra >= 0)]))),
        "infrared_ids": int(len(np.unique(intra[(modality == INFRARED) & (intra >= 0)]))),
    }
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
    from vitool.data.cache import build_cache
    from vitool.data.datasets import image_root, listing_sha256, load_split
    from vitool.io import check_output, make_provenance

    check_output(output, overwrite)
    samples = load_split(dataset.value, root, split.value, trial)
    base = image_root(dataset.value, root)
    config = _effective_config(dataset=dataset, split=split, trial=trial, height=height, width=width)
    made = make_provenance(config, inputs={"dataset_listing": listing_sha256(samples, base)})
    progress, advance = _progress(len(samples), f"cache {dataset.value}/{split.value}")
    with progress:
        build_cache(samples, base, height, width, output, overwrite, on_image=advance, provenance=made)
    typer.echo(f"wrote {len(samples)} images at {height}x{width} to {output}", err=True)


CheckedDataset = _choices("CheckedDataset", "sysu", "regdb", "llcm")


@app.command("check-dataset")
def check_dataset_command(
    dataset: Annotated[CheckedDataset, typer.Option(help="The official dataset --root should be a copy of.")],
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

    progress, advance = _progress(image_count(dataset.value, root), f"check {dataset.value}")
    with progress:
        report = check_dataset(dataset.value, root, decode, progress=advance)
    result = report.as_dict()
    if as_json:
        _emit_json(result)
    else:
        kind = (
            "synthetic data (vitool synth): structure checked, counts are its own"
            if report.synthetic
            else "official counts"
        )
        counts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in report.counts.items())
        typer.echo(f"{dataset.value} at {root}: {kind}; {counts}")
        for line in report.problems:
            typer.echo(f"  differs: {line}")
        typer.echo(
            f"{len(report.problems)} differences"
            if report.problems
            else "matches the official release"
            if not report.synthetic
            else "matches the official structure"
        )
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
    import contextlib

    from vitool.engine.config import parse_assignments
    from vitool.engine.run_folder import run_config, run_folder
    from vitool.engine.trainer import Engine

    if (output is None) == (resume is None):
        raise typer.BadParameter("give either -o RUN_DIR for a new run or --resume RUN_DIR")
    overrides = {
        "dataset": dataset.value if dataset else None,
        "root": root,
        "trial": trial,
        "method": method.value if method else None,
        "labels": labels,
        "backbone": backbone.value if backbone else None,
        "pretrained": pretrained,
        "epochs": epochs,
        "lr": lr,
        "optimizer": optimizer,
        "batches_per_epoch": batches_per_epoch,
        "val_ids": val_ids,
        "seed": seed,
        "device": device.value if device else None,
        "amp": amp,
        "workers": workers,
        "image_cache": image_cache,
        "tensorboard": tensorboard,
        **parse_assignments(set_ or []),
    }
    cfg, run_dir = run_config(output, resume, config, overrides)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    # a log file keeps each epoch's line whole; a terminal gets its own width
    console = Console(stderr=True, soft_wrap=True)
    first_process = os.environ.get("RANK", "0") == "0"  # under torchrun, process 0 holds the folder
    with run_folder(run_dir, resume is not None) if first_process else contextlib.nullcontext():
        engine = Engine(cfg, run_dir, log=lambda line: console.print(line, markup=False, highlight=False))
        if resume is not None:
            engine.resume(run_dir / "last.pt")
        columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("train", total=None, epoch=engine.start_epoch + 1)

            def advance(step: int, total: int) -> None:
                progress.update(task, completed=step, total=total, epoch=f"{engine.current_epoch + 1}/{cfg.epochs}")

            results = engine.run(progress=advance)
    if results is not None:  # process 0 of a distributed run, or a single process
        _emit_json({"run_dir": str(run_dir), **results})


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
    from vitool.engine.config import describe_recipe, describe_recipes
    from vitool.engine.recipes import recipe_path

    if keys:
        _print_keys(as_json)
        return
    if name is None:
        rows = describe_recipes()
        if as_json:
            _emit_json(rows)
            return
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            typer.echo(
                f"{r['name']:<{width}}  {r['dataset']:<5} {r['method']:<10} {r['backbone']:<12} GPUs: {r['gpus']}"
            )
            typer.echo(f"{'':<{width}}  {r['summary']}")
        return
    summary = describe_recipe(name)
    if as_json:
        _emit_json({**vars(summary), "path": str(recipe_path(name)), "text": recipe_path(name).read_text()})
    else:
        typer.echo(recipe_path(name).read_text(), nl=False)


def _print_keys(as_json: bool) -> None:
    """Every training key, the engine's first, then each method's (the methods that read it in brackets)."""
    from vitool.engine.config import key_reference

    rows = key_reference()
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        default = json.dumps(r["default"])  # as TOML writes it: "sysu", true, [20, 50]
        readers = f"  [{', '.join(r['methods'])}]" if r["methods"] else ""
        typer.echo(f"{r['key']}: {r['type']} = {default}{readers}")
        text = "; ".join(x for x in (f"allowed: {r['allowed']}" if r["allowed"] else "", r["meaning"]) if x)
        if text:
            typer.echo(f"    {text}")


# ------------------------------------------------------------------------------------------------- compare

TableFormat = _choices("TableFormat", "table", "markdown", "csv")


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
    from vitool.compare import compare as compare_runs
    from vitool.compare import load_run, render
    from vitool.io import atomic_output, check_output, make_provenance, sha256_file
    from vitool.show import plot_comparison

    if plot is not None:
        check_output(plot, overwrite)
    parsed: dict[str, list] = {}
    for item in groups:
        name, sep, paths = item.partition("=")
        if not sep or not name or not paths or name in parsed:
            raise typer.BadParameter(f"'{item}': give each group once as NAME=RUN[,RUN...]")
        parsed[name] = [load_run(p) for p in paths.split(",") if p]
    result = compare_runs(parsed, baseline)
    if plot is not None:
        files = [r.path / "results.json" for runs in parsed.values() for r in runs]
        meta = make_provenance({"groups": groups, "baseline": baseline}, inputs={str(f): sha256_file(f) for f in files})
        with atomic_output(plot, overwrite) as tmp:
            plot_comparison(result, tmp, meta)
        result["plot"] = str(plot)
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
    from vitool.data.datasets import check_images_match, image_root
    from vitool.evaluation.protocols import PROTOCOL_OF_DATASET, ProtocolSpec, check_protocol_fits
    from vitool.io import atomic_output, check_output, make_provenance, read_features, sha256_file
    from vitool.show import plot_rank_lists, rank_lists

    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    dataset = str(fs.attrs.get("dataset", "manifest"))
    proto = protocol.value if protocol else PROTOCOL_OF_DATASET.get(dataset, "generic")
    check_protocol_fits(fs.attrs.get("dataset"), proto, str(features), cross_dataset, fs.attrs.get("split"))
    spec = ProtocolSpec(proto, mode.value, "single", direction.value if direction else None, trials=1)
    lists = rank_lists(fs, spec, top, random_queries, best, worst, query, seed, where=str(features))
    base = image_root(dataset, root)
    missing = [str(fs.path[r.query]) for r in lists if not (base / fs.path[r.query]).is_file()]
    if missing:
        raise VitoolError(root, f"has no image '{missing[0]}'", "pass the dataset root the features were made from")
    check_images_match(fs, base, root)
    config = _effective_config(protocol=proto, mode=mode, direction=spec.resolved_direction(), top=top, seed=seed)
    meta = make_provenance(config, inputs={str(features): sha256_file(features)})
    title = f"{proto} {spec.resolved_direction()} ({features.name}); green: same identity"
    with atomic_output(output, overwrite) as tmp:
        plot_rank_lists(lists, fs, base, tmp, title, meta)
    rows = [
        {
            "query": str(fs.path[r.query]),
            "why": r.why,
            "ap": None if r.ap != r.ap else round(100 * r.ap, 2),
            "top": [str(fs.path[g]) for g in r.gallery],
            "match": r.match.astype(int).tolist(),
        }
        for r in lists
    ]
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
    import numpy as np

    from vitool.io import (
        align_labels,
        atomic_output,
        check_output,
        make_provenance,
        read_features,
        read_labels,
        sha256_file,
    )
    from vitool.show import embedding_2d, plot_embedding

    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    emb = fs.embedding(feature, features)
    colour_by, what = fs.pid, "identity"
    inputs = {str(features): sha256_file(features)}
    if labels is not None:
        ls = read_labels(labels)
        colour_by, what = ls.label[align_labels(fs, ls, labels)], f"label of {labels.name}"
        inputs[str(labels)] = sha256_file(labels)
    rows = np.arange(len(fs))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    coords, name = embedding_2d(emb[rows], seed, method)
    meta = make_provenance(_effective_config(method=method, feature=feature, seed=seed), inputs=inputs, seed=seed)
    with atomic_output(output, overwrite) as tmp:
        title = f"{name} of {features.name} ({len(rows)} rows), colour: {what}"
        plot_embedding(coords, colour_by[rows], fs.modality[rows], tmp, title, meta)
    typer.echo(f"wrote a {name} map of {len(rows)} rows to {output}")


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


def main() -> None:
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

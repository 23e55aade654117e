"""The stages, file in and file out: each function is what one ``vitool`` subcommand runs, so a script
gets the command's files (provenance included) and numbers without a subprocess.

The command line parses its options, calls one of these and prints the result; nothing here prints.
Long work reports through ``progress``: a callable taking (total, title) that returns the callable to
advance by one (or n) step; omit it for silence. Bad input raises ``VitoolError`` (a ValueError) with
one line naming the file or setting, and no output file is left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitool.errors import VitoolError

if TYPE_CHECKING:
    from vitool.data.check import Report
    from vitool.data.synth import SynthConfig

Progress = Callable[[int, str], Callable[..., None]]


def _silent(total: int, title: str) -> Callable[..., None]:
    return lambda n=1: None


def plain(**values: Any) -> dict[str, Any]:
    """Options as provenance records them: enums by value, paths as text."""
    return {k: (v.value if isinstance(v, Enum) else str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def _hashes(*paths: Path | None) -> dict[str, str]:
    from vitool.io import sha256_file

    return {str(p): sha256_file(p) for p in paths if p is not None}


# ---------------------------------------------------------------------------------------------------- data


def synth(out: str | Path, config: SynthConfig | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """``vitool synth``: a procedural dataset in an official layout under ``out`` (missing or empty), made
    by ``config`` (a ``vitool.data.synth.SynthConfig``; its defaults when omitted). Returns the image and
    identity counts and the options."""
    from vitool.data.synth import SynthConfig, generate

    config = config or SynthConfig()
    title = f"synth {config.layout}"
    counts = generate(out, config, progress=(progress or _silent)(config.train_ids + config.test_ids, title))
    return {"root": str(out), **counts, "options": asdict(config)}  # options["images"]: per identity and camera


def check_dataset(dataset: str, root: str | Path, decode: bool = True, progress: Progress | None = None) -> Report:
    """``vitool check-dataset``: the copy at ``root`` against the official ``dataset``; returns the
    ``Report`` (its ``problems`` empty when the copy matches)."""
    from vitool.data.check import check_dataset as check
    from vitool.data.check import image_count

    advance = (progress or _silent)(image_count(dataset, root), f"check {dataset}")
    return check(dataset, root, decode, progress=advance)


# ------------------------------------------------------------------------------------------------ features


@dataclass
class Extracted:
    """A test or train split's features and what made them (for provenance)."""

    features: Any  # FeatureSet
    model_config: dict[str, Any]
    flip: str
    listing: str  # sha256 of the split's file listing


def _flip_mode(flip: bool | None, recipe: str) -> str:
    """flip True/False over a model's test recipe: True keeps a recipe's own way of averaging."""
    if flip is None:
        return recipe
    return (recipe if recipe != "none" else "mean") if flip else "none"


def extract_split(
    dataset: str,
    root: str | Path,
    make_model: Callable[[], Any],
    split: str = "test",
    trial: int = 1,
    device: str = "auto",
    batch_size: int = 64,
    flip: bool | None = None,
    workers: int = 0,
    image_cache: str | Path | None = None,
    progress: Progress | None = None,
) -> Extracted:
    """A split's features from the model ``make_model`` builds. The split is loaded first, so a bad dataset
    root fails before any model or weights are touched."""
    from vitool.data.datasets import image_root, load_split, split_attrs

    samples = load_split(dataset, root, split, trial)
    attrs = split_attrs(dataset, split, trial)
    return extract_samples(
        samples, image_root(dataset, root), attrs, make_model, device, batch_size, flip, workers, image_cache, progress
    )


def extract_samples(
    samples: list,
    base: Path,
    attrs: dict[str, Any],
    make_model: Callable[[], Any],
    device: str = "auto",
    batch_size: int = 64,
    flip: bool | None = None,
    workers: int = 0,
    image_cache: str | Path | None = None,
    progress: Progress | None = None,
) -> Extracted:
    """The features of ``samples`` (images under ``base``), in their order; ``attrs`` name their split."""
    from vitool.data.datasets import listing_sha256
    from vitool.devices import resolve_device
    from vitool.models.features import extract_featureset

    model = make_model()
    cache = None
    if image_cache is not None:
        from vitool.data.cache import ImageCache

        cache = ImageCache(image_cache, model.config.height, model.config.width)
    mode = _flip_mode(flip, model.config.test_flip)
    advance = (progress or _silent)(len(samples), f"extract {attrs['dataset']}/{attrs['split']}")
    fs = extract_featureset(
        model, samples, base, attrs, resolve_device(device), batch_size, mode, workers, on_batch=advance, cache=cache
    )
    return Extracted(fs, model.config.to_dict(), mode, listing_sha256(samples, base))


def extract_features(
    dataset: str,
    root: str | Path,
    output: str | Path,
    *,
    split: str = "test",
    trial: int = 1,
    checkpoint: str | Path | None = None,
    backbone: str = "resnet50",
    pretrained: str = "imagenet",
    height: int | None = None,
    width: int | None = None,
    batch_size: int = 64,
    device: str = "auto",
    flip: bool | None = None,
    workers: int = 0,
    image_cache: str | Path | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Progress | None = None,
):
    """``vitool extract-features``: post-BN and pre-BN features of a split, written to ``output`` with
    provenance; returns the FeatureSet."""
    from vitool.io import check_output, make_provenance, sha256_file, write_features
    from vitool.models import build_model

    output = Path(output)
    check_output(output, overwrite)
    made = extract_split(
        dataset,
        root,
        lambda: build_model(checkpoint, backbone, pretrained, height, width, seed),
        split, trial, device, batch_size, flip, workers, image_cache, progress,
    )  # fmt: skip
    config = plain(
        dataset=dataset,
        root=root,
        split=split,
        trial=trial,
        checkpoint=checkpoint,
        backbone=made.model_config["backbone"],
        pretrained=None if checkpoint else pretrained,
        model=made.model_config,
        batch_size=batch_size,
        flip=made.flip,
    )
    provenance = make_provenance(
        config,
        seed=seed,
        inputs={"dataset_listing": made.listing},
        checkpoint=sha256_file(checkpoint) if checkpoint else None,
    )
    write_features(output, made.features, provenance, overwrite)
    return made.features


# ------------------------------------------------------------------------------------------------ evaluate


def evaluate(
    features: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    dataset: str | None = None,
    root: str | Path | None = None,
    trial: int = 1,
    flip: bool | None = None,
    batch_size: int = 64,
    protocol: str | None = None,
    mode: str = "all",
    shot: str = "single",
    direction: str | None = None,
    trials: int = 10,
    deen_swap: bool = False,
    feature: str = "features",
    cross_dataset: bool = False,
    device: str = "auto",
    rerank: Any = None,
    output: str | Path | None = None,
    plot: str | Path | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """``vitool evaluate``: a features file (or a checkpoint's test features of ``dataset`` at ``root``)
    scored under a protocol; the results as ``--json`` prints them, provenance included, also written to
    ``output`` (JSON) and drawn to ``plot`` (CMC PNG) when given. ``rerank``: a ``vitool.Rerank``."""
    import json

    from vitool.evaluation.evaluate import plot_cmc, score
    from vitool.evaluation.protocols import protocol_spec
    from vitool.io import atomic_output, check_output, make_provenance, read_features

    features, checkpoint = _path(features), _path(checkpoint)
    for target in (output, plot):
        if target is not None:
            check_output(target, overwrite, inputs=(features, checkpoint))
    if (features is None) == (checkpoint is None):
        raise VitoolError(None, "give either a features file or a checkpoint (with its dataset and root)")
    if checkpoint is not None:
        if dataset is None or root is None:
            raise VitoolError(checkpoint, "scoring a checkpoint needs the dataset and its root", "give both")
        from vitool.models import build_model

        fs = extract_split(
            dataset, root, lambda: build_model(checkpoint), "test", trial, device, batch_size, flip, 0, None, progress
        ).features
        source = checkpoint
    else:
        fs = read_features(features)
        source = features
    spec = protocol_spec(protocol, fs.attrs.get("dataset"), mode, shot, direction, trials, deen_swap)
    results = score(fs, spec, feature, device, str(source), rerank, cross_dataset)
    config = plain(protocol=spec.protocol, mode=mode, shot=shot, direction=spec.resolved_direction(), trials=trials)
    config |= {"cross_dataset": cross_dataset, "rerank": results["reranked"]}
    results["provenance"] = make_provenance(config, inputs=_hashes(source))
    if output is not None:
        with atomic_output(output, overwrite) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
    if plot is not None:
        with atomic_output(plot, overwrite) as tmp:
            plot_cmc(results, tmp, f"CMC, {describe_protocol(results, rerank)} ({source.name})")
    return results


def describe_protocol(results: dict[str, Any], rerank: Any = None) -> str:
    """ "sysu all i2v", with the re-ranking settings when there were any."""
    label = results["protocol"] + (f" {results['mode']}" if results["protocol"] == "sysu" else "")
    label += f" {results['direction']}"
    if rerank is not None:
        label += f" reranked (k1 {rerank.k1}, k2 {rerank.k2}, lambda {rerank.lam})"
    return label


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


# ------------------------------------------------------------------------------------------------ models


def convert_checkpoint(source: str | Path, output: str | Path, fmt: str = "auto", overwrite: bool = False):
    """A released AGW, PCLHD, MULT, OTLA or WSL checkpoint (``fmt``, or "auto" from its keys) written as a
    vitool checkpoint at ``output`` with its repository's test recipe; returns the ``Converted`` record."""
    from vitool.io import check_output, make_provenance
    from vitool.models import RELEASED_FORMATS
    from vitool.models.convert import convert_file

    if fmt not in ("auto", *RELEASED_FORMATS):
        raise VitoolError("fmt", f"expected auto or one of {', '.join(RELEASED_FORMATS)}, got {fmt!r}")
    source, output = Path(source), Path(output)
    check_output(output, overwrite, inputs=(source,))
    inputs = _hashes(source) if source.is_file() else {}
    return convert_file(source, fmt, output, make_provenance({"source": str(source), "format": fmt}, inputs=inputs))


def convert(source: str | Path, output: str | Path, fmt: str = "auto", overwrite: bool = False) -> dict[str, Any]:
    """``vitool convert``: :func:`convert_checkpoint`, summarised as ``--json`` prints it."""
    converted = convert_checkpoint(source, output, fmt, overwrite)
    return {
        "format": converted.format,
        "output": str(output),
        "dropped_keys": len(converted.dropped),
        "model": converted.model.config.to_dict(),
        "source": converted.source_meta,
    }


def export(checkpoint: str | Path, output: str | Path, opset: int = 17, overwrite: bool = False) -> dict[str, Any]:
    """``vitool export``: the checkpoint's test embedding as ONNX, checked in onnxruntime against torch."""
    from vitool.io import atomic_output, make_provenance, sha256_file
    from vitool.models import build_model
    from vitool.models.export import export_onnx

    model = build_model(checkpoint)
    made = make_provenance({"opset": opset, "model": model.config.to_dict()}, checkpoint=sha256_file(checkpoint))
    with atomic_output(output, overwrite) as tmp:
        report = export_onnx(model, tmp, opset, made)
    return {"output": str(output), **report}


# ------------------------------------------------------------------------------------------------- labels


@dataclass
class LabelsWritten:
    """A labels file written: its settings, the label-quality figures stored in it, the solver's facts."""

    output: str
    params: dict[str, Any]
    diagnostics: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """As ``--json`` prints it."""
        return {"output": self.output, "params": self.params, **self.facts, "diagnostics": self.diagnostics}


def _write_assignment(output: Path, fs, result, method: str, params: dict, inputs: dict, overwrite: bool):
    """The labels file of an ``Assignment`` aligned with the features ``fs``, with its diagnostics."""
    from vitool.evaluation.diagnostics import label_diagnostics, match_diagnostics
    from vitool.io import LabelSet, make_provenance, write_labels

    diagnostics = label_diagnostics(fs.pid, fs.modality, result.label)
    if result.intra_label is not None:
        rates, counts = match_diagnostics(fs.pid, fs.modality, result.intra_label, result.extra)
        merged = counts | rates  # each kind's pairs, precision and coverage together
        diagnostics |= {k: merged[k] for k in sorted(merged, key=lambda k: k.rsplit("_", 1)[0])}
    labels = LabelSet(
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
    write_labels(output, labels, make_provenance(params, seed=params.get("seed"), inputs=inputs), overwrite)
    return LabelsWritten(str(output), params, diagnostics, dict(result.attrs))


def cluster(features: str | Path, output: str | Path, config: Any = None, overwrite: bool = False) -> LabelsWritten:
    """``vitool cluster``: pseudo labels of a features file per modality (or jointly) by ``config`` (a
    ``ClusterConfig``: Jaccard + DBSCAN by default), written as a labels file."""
    from vitool.assign import Assignment
    from vitool.cluster import ClusterConfig, cluster_labels
    from vitool.io import check_output, read_features

    features, output, config = Path(features), Path(output), config or ClusterConfig()
    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    labels = cluster_labels(fs.features, fs.modality, config)
    result = Assignment(label=labels, intra_label=None if config.joint else labels)
    return _write_assignment(output, fs, result, config.method, asdict(config), _hashes(features), overwrite)


def assign_labels(
    features: str | Path,
    labels: str | Path,
    output: str | Path,
    method: str,
    overwrite: bool = False,
    **params: Any,
) -> LabelsWritten:
    """``vitool assign-labels``: both modalities in one label space from the per-modality labels of
    ``labels`` (its intra_label, else label), by ``method`` (ot, mult, experts or hungarian) with its
    settings (``vitool.assign.METHODS``); settings another method reads are ignored."""
    from vitool.assign import METHODS, assign
    from vitool.io import align_labels, check_output, read_features, read_labels

    if method not in METHODS:
        raise VitoolError("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
    features, labels, output = Path(features), Path(labels), Path(output)
    check_output(output, overwrite, inputs=(features, labels))
    fs = read_features(features)
    ls = read_labels(labels)
    intra = (ls.intra_label if ls.intra_label is not None else ls.label)[align_labels(fs, ls, labels)]
    known = {k for settings in METHODS.values() for k in settings}
    unknown = sorted(set(params) - known)
    if unknown:
        raise VitoolError(unknown[0], "is no setting of any association", f"use {', '.join(sorted(known))}")
    own = {k: params.get(k, default) for k, default in METHODS[method].items()}
    result = assign(method, fs.features, fs.modality, intra, str(labels), fs.probs, fs.extra, **own)
    inputs = _hashes(features, labels)
    return _write_assignment(output, fs, result, method, {"method": method, **own}, inputs, overwrite)


def weak_labels(
    dataset: str,
    root: str | Path,
    output: str | Path,
    trial: int = 1,
    seed: int = 0,
    keep_infrared: float = 1.0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``vitool weak-labels``: identities inside each modality of the training split, renumbered per
    modality by a seeded permutation, no cross-modal link (``label`` -1); returns the counts."""
    import numpy as np

    from vitool.data.datasets import image_root, listing_sha256, load_split, sample_columns
    from vitool.data.weak import weak_labels as renumbered
    from vitool.io import LabelSet, check_output, make_provenance, write_labels
    from vitool.modality import INFRARED

    check_output(output, overwrite)
    samples = load_split(dataset, root, "train", trial)
    columns = sample_columns(samples)
    modality = columns["modality"]
    intra = renumbered(columns["pid"], modality, seed, keep_infrared)
    params = {"dataset": dataset, "trial": trial, "seed": seed, "keep_infrared": keep_infrared}
    labels = LabelSet(
        path=columns["path"],
        modality=modality,
        label=np.full(len(samples), -1, dtype=np.int64),
        method="weak",
        params=params,
        intra_label=intra,
    )
    listing = listing_sha256(samples, image_root(dataset, root))
    write_labels(output, labels, make_provenance(params, seed=seed, inputs={"dataset_listing": listing}), overwrite)
    kept = intra >= 0
    return {
        "output": str(output),
        "images": len(samples),
        "visible_ids": int(len(np.unique(intra[(modality != INFRARED) & kept]))),
        "infrared_ids": int(len(np.unique(intra[(modality == INFRARED) & kept]))),
    }


# -------------------------------------------------------------------------------------------------- images


def cache(
    dataset: str,
    root: str | Path,
    output: str | Path,
    split: str = "train",
    trial: int = 1,
    height: int = 288,
    width: int = 144,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> int:
    """``vitool cache``: a split's images pre-resized into one uint8 HDF5 file; returns the image count."""
    from vitool.data.cache import build_cache
    from vitool.data.datasets import image_root, listing_sha256, load_split
    from vitool.io import check_output, make_provenance

    check_output(output, overwrite)
    samples = load_split(dataset, root, split, trial)
    base = image_root(dataset, root)
    config = plain(dataset=dataset, split=split, trial=trial, height=height, width=width)
    made = make_provenance(config, inputs={"dataset_listing": listing_sha256(samples, base)})
    advance = (progress or _silent)(len(samples), f"cache {dataset}/{split}")
    build_cache(samples, base, height, width, Path(output), overwrite, on_image=advance, provenance=made)
    return len(samples)


def info(file: str | Path) -> dict[str, Any]:
    """``vitool info``: a stage file's kind, rows, modalities, identities and provenance."""
    from vitool.io import summarise

    return summarise(file)


def show_ranks(
    features: str | Path,
    root: str | Path,
    output: str | Path,
    *,
    protocol: str | None = None,
    mode: str = "all",
    direction: str | None = None,
    top: int = 10,
    random_queries: int = 4,
    best: int = 1,
    worst: int = 1,
    queries: list[str] | None = None,
    seed: int = 0,
    cross_dataset: bool = False,
    overwrite: bool = False,
) -> list[dict[str, Any]]:
    """``vitool show ranks``: query images with their top gallery images (trial 0 of the protocol) drawn
    to a PNG; returns each query's list (path, why chosen, AP in percent, top paths, matches)."""
    from vitool.data.datasets import check_images_match, image_root
    from vitool.evaluation.protocols import check_protocol_fits, protocol_spec
    from vitool.io import atomic_output, check_output, make_provenance, read_features
    from vitool.show import plot_rank_lists, rank_lists

    features, root = Path(features), Path(root)
    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    dataset = str(fs.attrs.get("dataset", "manifest"))
    spec = protocol_spec(protocol, dataset, mode, "single", direction, 1)
    check_protocol_fits(fs.attrs.get("dataset"), spec.protocol, str(features), cross_dataset, fs.attrs.get("split"))
    lists = rank_lists(fs, spec, top, random_queries, best, worst, queries, seed, where=str(features))
    base = image_root(dataset, root)
    missing = [str(fs.path[r.query]) for r in lists if not (base / fs.path[r.query]).is_file()]
    if missing:
        raise VitoolError(root, f"has no image '{missing[0]}'", "pass the dataset root the features were made from")
    check_images_match(fs, base, root)
    config = plain(protocol=spec.protocol, mode=mode, direction=spec.resolved_direction(), top=top, seed=seed)
    title = f"{spec.protocol} {spec.resolved_direction()} ({features.name}); green: same identity"
    with atomic_output(output, overwrite) as tmp:
        plot_rank_lists(lists, fs, base, tmp, title, make_provenance(config, inputs=_hashes(features)))
    return [
        {
            "query": str(fs.path[r.query]),
            "why": r.why,
            "ap": None if r.ap != r.ap else round(100 * r.ap, 2),
            "top": [str(fs.path[g]) for g in r.gallery],
            "match": r.match.astype(int).tolist(),
        }
        for r in lists
    ]


def show_embedding(
    features: str | Path,
    output: str | Path,
    labels: str | Path | None = None,
    method: str = "auto",
    max_points: int = 5000,
    feature: str = "features",
    seed: int = 0,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``vitool show embedding``: a 2-D map (t-SNE or PCA) of a seeded sample of the features, coloured by
    identity or by ``labels``' label, written as a PNG; returns the map's name and its row count."""
    import numpy as np

    from vitool.io import align_labels, atomic_output, check_output, make_provenance, read_features, read_labels
    from vitool.show import embedding_2d, plot_embedding

    features, labels = Path(features), _path(labels)
    check_output(output, overwrite, inputs=(features,))
    fs = read_features(features)
    emb = fs.embedding(feature, features)
    colour_by, what = fs.pid, "identity"
    if labels is not None:
        ls = read_labels(labels)
        colour_by, what = ls.label[align_labels(fs, ls, labels)], f"label of {labels.name}"
    rows = np.arange(len(fs))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_points, replace=False))
    coords, name = embedding_2d(emb[rows], seed, method)
    config = plain(method=method, feature=feature, seed=seed)
    meta = make_provenance(config, inputs=_hashes(features, labels), seed=seed)
    with atomic_output(output, overwrite) as tmp:
        title = f"{name} of {features.name} ({len(rows)} rows), colour: {what}"
        plot_embedding(coords, colour_by[rows], fs.modality[rows], tmp, title, meta)
    return {"output": str(output), "map": name, "rows": len(rows)}


# -------------------------------------------------------------------------------------------------- runs


def recipes(name: str | None = None, keys: bool = False) -> dict[str, Any] | list[dict[str, Any]]:
    """``vitool recipes``: every config key's reference with ``keys``, else the shipped recipes' summaries,
    or with ``name`` that recipe's summary, path and text (an unknown name: one line listing them)."""
    from vitool.engine.config import describe_recipe, describe_recipes, key_reference
    from vitool.engine.recipes import recipe_path

    if keys or name is None:
        return key_reference() if keys else describe_recipes()
    summary = describe_recipe(name)
    return {**vars(summary), "path": str(recipe_path(name)), "text": recipe_path(name).read_text()}


def compare(
    groups: dict[str, list[str | Path]],
    baseline: str | None = None,
    plot: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``vitool compare``: mean and sd over seeds of each group of run folders, and with ``baseline`` the
    paired difference per seed with its 95% interval; Rank-1 and mAP drawn to ``plot`` when given."""
    from vitool.compare import compare as compare_runs
    from vitool.compare import load_run
    from vitool.io import atomic_output, check_output, make_provenance
    from vitool.show import plot_comparison

    if plot is not None:
        check_output(plot, overwrite)
    runs = {name: [load_run(p) for p in paths] for name, paths in groups.items()}
    result = compare_runs(runs, baseline)
    if plot is not None:
        files = [r.path / "results.json" for group in runs.values() for r in group]
        listed = [f"{name}={','.join(str(p) for p in paths)}" for name, paths in groups.items()]  # as typed
        meta = make_provenance({"groups": listed, "baseline": baseline}, inputs=_hashes(*files))
        with atomic_output(plot, overwrite) as tmp:
            plot_comparison(result, tmp, meta)
        result["plot"] = str(plot)
    return result


def train(
    output: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int, int, int], None] | None = None,
) -> dict[str, Any] | None:
    """``vitool train``: a new run in ``output`` (``config``, a recipe name or TOML file, then
    ``overrides``, any key of ``vitool recipes --keys``) or the run in ``resume`` continued. Every key is
    checked before the folder is made; the folder has one writer. ``log`` gets each epoch's line,
    ``progress`` (step, steps, epoch, epochs) each batch. Returns the results (None on processes other
    than the first of a distributed run)."""
    import contextlib
    import os

    from vitool.engine.run_folder import run_config, run_folder
    from vitool.engine.trainer import Engine

    output, resume = _path(output), _path(resume)
    cfg, run_dir = run_config(output, resume, config, overrides or {})
    first_process = os.environ.get("RANK", "0") == "0"  # under torchrun, process 0 holds the folder
    with run_folder(run_dir, resume is not None) if first_process else contextlib.nullcontext():
        engine = Engine(cfg, run_dir, log=log)
        if resume is not None:
            engine.resume(run_dir / "last.pt")

        def advance(step: int, total: int) -> None:
            if progress is not None:
                progress(step, total, engine.current_epoch + 1, cfg.epochs)

        results = engine.run(progress=advance)
    return None if results is None else {"run_dir": str(run_dir), **results}

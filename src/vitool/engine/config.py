"""Training configuration: defaults, a TOML file, then command-line values, in that order of precedence.

The engine's keys are TrainConfig's fields; each method's own keys are the fields of its options dataclass
(vitool.methods.registry), flat beside them in the file. The effective configuration (the engine's keys
and the chosen method's) is saved as ``config.toml`` in the run folder, and ``--resume`` reads it back.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from vitool.data.datasets import DATASETS
from vitool.data.transforms import ERASING_STYLES
from vitool.engine import DEVICES
from vitool.engine.recipes import recipe_names, recipe_path, resolve_config
from vitool.errors import VitoolError
from vitool.models import BACKBONES, TEST_FLIPS


@dataclass
class TrainConfig:
    dataset: str = "sysu"  # the layout of root: sysu | regdb | llcm | manifest (a CSV of your own)
    root: str = ""  # the dataset folder, as the dataset ships it (stored absolute in config.toml)
    trial: int = 1  # RegDB: which of the ten train/test splits
    method: str = "supervised"  # supervised | otla | visible | experts | dcl | pclhd | mult | a plugin's
    # otla / visible: visible labels (e.g. vitool cluster output); experts: per-modality labels
    # (vitool weak-labels output); none = derived from the ground truth
    labels: str = ""
    backbone: str = "resnet50"  # resnet50 (the papers') | resnet18 | mobilenet_v2 (CPU-sized)
    pretrained: str = "imagenet"  # imagenet | none | a local weights file
    # a vitool checkpoint, or a run folder (its last.pt), whose network the run starts from where shapes agree
    # (e.g. MULT's cross stage from a DCL run); recorded in provenance with its hash; "": none
    init: str = ""
    height: int = 0  # 0: the backbone's default (288x144 for resnet50, 128x64 otherwise)
    width: int = 0  # 0: the backbone's default
    epochs: int = 81  # the whole run, every stage included
    ids_per_batch: int = 0  # 0: the method's (AGW 8 x 4, OTLA 4 x 8)
    images_per_id: int = 0  # 0: the method's; set alone, the other stays the method's
    batches_per_epoch: int = 0  # 0: max(#visible, #infrared) // batch + 1, as AGW
    optimizer: str = "sgd"  # sgd (nesterov, as AGW) | adam
    lr: float = 0.1  # heads (BNNeck, classifier); the backbone gets lr * backbone_lr_factor
    backbone_lr_factor: float = 0.1  # the backbone's learning rate as a share of lr
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # L2 weight decay of every parameter group
    # The learning-rate schedule restarts at every schedule stage: warm-up, then a step by gamma at each
    # milestone, counted from the stage's start. A milestone >= 1 is an epoch of the stage; one in (0, 1)
    # is a fraction of the stage's length (rounded), so stages of different lengths decay at the same places.
    warmup_epochs: int = 10
    # the warm-up's multipliers: 0 AGW's (e + 1) / warmup_epochs (0.1, 0.2, ..., 1.0 over 10 epochs); f > 0
    # linear from f: f + (1 - f) e / warmup_epochs (the experts' released 0.01, 0.109, ..., 0.901); -1: the
    # method's (experts 0.01, others 0)
    warmup_factor: float = -1.0
    milestones: list[float] = field(default_factory=lambda: [20, 50])  # where lr steps by gamma (see warmup_epochs)
    gamma: float = 0.1  # the factor of each step
    # epochs at which a new schedule stage starts; [-1]: the method's stage switch where its released code
    # restarts there (pclhd: dcl_epochs, experts: experts_stage1_epochs), else none; []: one schedule
    schedule_stages: list[int] = field(default_factory=lambda: [-1])
    stage_optimizer_restart: bool = True  # a new schedule stage also clears the optimiser's state (Adam's moments)
    # the model a new schedule stage starts from: last (the previous stage's last epoch) | best (best.pt, the
    # best held-out val_ids model so far, never the test set; PCLHD's release picks its stage-1 model on the test)
    stage_start: str = "last"
    erasing: float = 0.0  # chance of random erasing on a training image
    # how it erases: torchvision (fill 0, the ImageNet mean colour, up to a third of the image: AGW-for-LLCM,
    # OTLA) | channel (CAJ's ChannelRandomErasing: a light grey, up to 40%: PCLHD, MULT, WSL); "": the method's
    erasing_style: str = ""
    # CAJ's ChannelAdapGray on infrared training images: one colour channel copied into all three 3/4 of the
    # time, else luminance grey with this chance; 0: off; -1: the method's (dcl / pclhd / mult / experts 0.5)
    infrared_channel_gray: float = -1.0
    # epochs at the start trained with MULT's released stage-one augmentation (LinearTransform, colour jitter,
    # erasing 0.9: data.transforms.mult_stage_one); -1: the method's (mult: its dcl_epochs; others 0)
    strong_augmentation_epochs: int = -1
    visible_grayscale: float = -1.0  # chance a visible training image turns gray; -1: the method's (OTLA 0.5, AGW 0)
    # chance a visible training image becomes one of its colour channels, thrice; -1: the method's
    # (dcl / pclhd / mult 0.5, others 0)
    visible_channel_exchange: float = -1.0
    # the images of an identity (or cluster) in a batch: 1 drawn with replacement (AGW's IdentitySampler);
    # 0 without replacement when it has enough (the PCLHD, MULT and WSL samplers); -1: the method's
    sampler_replacement: int = -1
    # how a batch's identities and images are drawn: identity (AGW: identities afresh each batch) | gallery
    # (PCLHD's released sampler: every cluster once per pass, positives from the anchor's other cameras);
    # "": the method's (dcl, pclhd gallery; others identity)
    sampler_style: str = ""
    # test features: none | mean (of the image's and its mirror's, as WSL) | mean_of_l2 (each L2-normalised
    # first, as PCLHD and MULT), then L2; "": the method's released test
    test_flip: str = ""
    val_ids: int = 0  # identities held out of training to choose best.pt (never the test set)
    eval_every: int = 1  # epochs between held-out (val_ids) evaluations
    seed: int = 0  # seeds the sampler, the augmentations and the initialisation
    device: str = "auto"  # auto (CUDA when there is one) | cpu | cuda
    amp: str = "auto"  # auto (fp16 on CUDA, none on CPU) | none | fp16 | bf16
    workers: int = -1  # DataLoader worker processes; -1: 0 on the CPU, min(8, CPU cores) with a GPU
    channels_last: bool = False  # NHWC activations on the GPU: usually faster convolutions under AMP
    image_cache: str = ""  # an HDF5 image cache at the model's size (vitool cache)
    tensorboard: bool = False  # also write each epoch's numbers as TensorBoard events (extra: tensorboard)
    # the method's own keys (fields of its registered options dataclass, e.g. OTLAOptions): flat in the
    # TOML file and --set; load_config keeps the method's keys with their defaults filled in
    method_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every key, flat (the method's own beside the engine's), as in config.toml and provenance."""
        values = asdict(self)
        values.update(values.pop("method_options"))
        return values

    def stages(self, method_restart: int | None = None) -> list[int]:
        """The epochs that start a new schedule stage, ``[-1]`` resolved to the method's restart."""
        stages = self.schedule_stages
        if stages == [-1]:
            stages = [method_restart] if method_restart is not None else []
        return sorted(s for s in stages if 0 < s < self.epochs)

    def warmup_from(self, method_factor: float) -> float:
        """The warm-up's first multiplier: the config's ``warmup_factor``, or with -1 the method's."""
        return method_factor if self.warmup_factor < 0 else self.warmup_factor

    def lr_at(self, epoch: int, stages: list[int] | tuple[int, ...] = (), warmup_factor: float = 0.0) -> float:
        """AGW's schedule (linear warm-up, then steps at the milestones), restarted at each of ``stages``;
        ``warmup_factor`` > 0: the warm-up climbs linearly from that multiplier instead (``warmup_factor``)."""
        begin, end = stage_of(epoch, stages, self.epochs)
        e = epoch - begin
        if e < self.warmup_epochs:
            if warmup_factor > 0:
                return self.lr * (warmup_factor + (1 - warmup_factor) * e / self.warmup_epochs)
            return self.lr * (e + 1) / self.warmup_epochs
        steps = [m if m >= 1 else int(m * (end - begin) + 0.5) for m in self.milestones]  # half up
        return self.lr * self.gamma ** sum(e >= s for s in steps)


def stage_of(epoch: int, stages: list[int] | tuple[int, ...], epochs: int) -> tuple[int, int]:
    """The first epoch of the schedule stage that holds ``epoch`` and the first epoch after it."""
    return max([0, *[s for s in stages if s <= epoch]]), min([epochs, *[s for s in stages if s > epoch]])


KEYS = {f.name for f in fields(TrainConfig)} - {"method_options"}
COMMAND_LINE = "command line"  # where a value given by --set, an option or a Python caller came from

OPTIMIZERS = ("sgd", "adam")
AMP_MODES = ("auto", "none", "fp16", "bf16")


def _chance(value: float, method_default: bool = True) -> bool:
    return 0 <= value <= 1 or (method_default and value == -1)


# The engine's keys that a type alone does not fully check: (is the value valid, what is allowed).
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "trial": (lambda v: 1 <= v <= 10, "a RegDB trial in 1..10"),
    "backbone": (lambda v: v in BACKBONES, f"one of {', '.join(BACKBONES)}"),
    "height": (lambda v: v >= 0, "pixels >= 1, or 0 (the backbone's)"),
    "width": (lambda v: v >= 0, "pixels >= 1, or 0 (the backbone's)"),
    "epochs": (lambda v: v >= 1, "an epoch count >= 1"),
    "ids_per_batch": (lambda v: v >= 0, "a count >= 1, or 0 (the method's)"),
    "images_per_id": (lambda v: v >= 0, "a count >= 1, or 0 (the method's)"),
    "batches_per_epoch": (lambda v: v >= 0, "a count >= 1, or 0 (AGW's rule)"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: v > 0, "a learning rate > 0"),
    "backbone_lr_factor": (lambda v: v >= 0, "a factor >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a value in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, "a value >= 0"),
    "warmup_epochs": (lambda v: v >= 0, "an epoch count >= 0"),
    "warmup_factor": (_chance, "a value in [0, 1] or -1 (the method's)"),
    "milestones": (lambda v: all(m > 0 for m in v), "epochs >= 1 or fractions in (0, 1) of a stage"),
    "gamma": (lambda v: v > 0, "a factor > 0"),
    "stage_start": (lambda v: v in ("last", "best"), "last or best"),
    "schedule_stages": (lambda v: v == [-1] or all(s >= 1 for s in v), "epochs >= 1, [] or [-1] (the method's)"),
    "erasing": (lambda v: _chance(v, method_default=False), "a probability in [0, 1]"),
    "visible_grayscale": (_chance, "a probability in [0, 1] or -1 (the method's)"),
    "visible_channel_exchange": (_chance, "a probability in [0, 1] or -1 (the method's)"),
    "erasing_style": (
        lambda v: v in ("", *ERASING_STYLES),
        f'one of {", ".join(ERASING_STYLES)} or "" (the method\'s)',
    ),
    "infrared_channel_gray": (_chance, "a probability in [0, 1] or -1 (the method's)"),
    "strong_augmentation_epochs": (lambda v: v >= -1, "an epoch count >= 0, or -1 (the method's)"),
    "sampler_replacement": (
        lambda v: v in (-1, 0, 1),
        "1 (with replacement), 0 (without when enough) or -1 (the method's)",
    ),
    "sampler_style": (lambda v: v in ("", "identity", "gallery"), 'identity, gallery or "" (the method\'s)'),
    "test_flip": (lambda v: v in ("", *TEST_FLIPS), f'one of {", ".join(TEST_FLIPS)} or "" (the method\'s)'),
    "val_ids": (lambda v: v >= 0, "a count >= 0"),
    "eval_every": (lambda v: v >= 1, "an epoch count >= 1"),
    "seed": (lambda v: v >= 0, "a seed >= 0"),
    "device": (lambda v: v in DEVICES, f"one of {', '.join(DEVICES)}"),
    "amp": (lambda v: v in AMP_MODES, f"one of {', '.join(AMP_MODES)}"),
    "workers": (lambda v: v >= -1, "a count >= 0, or -1 (0 on a CPU, up to 8 with a GPU)"),
}


def _type_name(kind: Any) -> str:
    if get_origin(kind) is list:
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(get_args(kind)[0], "values")
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(kind, str(kind))


def typed_value(kind: Any, value: Any) -> tuple[bool, Any]:
    """(does ``value`` fit the annotation ``kind``, the value as that type): TOML's integers are numbers
    too, but a bool is never a number and a number never a string."""
    if get_origin(kind) is list:
        if not isinstance(value, list):
            return False, value
        items = [typed_value(get_args(kind)[0], v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if kind is float:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return number, float(value) if number else value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind in (bool, str):
        return isinstance(value, kind), value
    return True, value  # a plugin's own annotation: its dataclass checks it


def check_keys(
    cls: type, values: dict[str, Any], origins: dict[str, str | None], rules: dict | None = None, convert: bool = True
) -> None:
    """Check each of ``values`` against the annotation of ``cls``'s field of that name (and ``rules``),
    in place (with ``convert``, an integer where a number is meant becomes a float); the error names
    where it came from."""
    hints = get_type_hints(cls)
    for key, value in values.items():
        if key not in hints:
            continue
        ok, typed = typed_value(hints[key], value)
        values[key] = typed if convert else value
        rule = (rules or {}).get(key)
        if ok and (rule is None or rule[0](values[key])):
            continue
        allowed = rule[1] if ok and rule else _type_name(hints[key])
        raise VitoolError(origins.get(key), f"{key} = {_toml(value)}", f"use {allowed}")


def _toml(value: Any) -> str:
    """A value as it is written in a config file (what the user typed)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _split_method_options(values: dict[str, Any], where: Path | None) -> dict[str, Any]:
    """Move the keys that methods declare into ``method_options``; any other unknown key is an error. A key
    of another method than the one trained is accepted (one file may serve several methods) and unused."""
    unknown = sorted(set(values) - KEYS)
    if not unknown:
        return values
    from vitool.methods.registry import option_keys

    known = option_keys()
    bad = [k for k in unknown if k not in known]
    if bad:
        fix = "see `vitool recipes --keys` for every key"
        raise VitoolError(where, f"unknown key{'s' * (len(bad) > 1)} {', '.join(bad)}", fix)
    options = {k: values.pop(k) for k in unknown}
    return {**values, "method_options": options}


def config_layers(path: Path, _inside: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """A TOML config file and the files its ``base`` keys lead to, each with its own keys, the deepest
    base first: fast-reid's ``_BASE_``, so that a variant states only what it changes (recipes/demo-mult.toml).
    ``base`` is a path relative to the file; a base that is no file there may name a packaged recipe."""
    if not path.is_file():
        raise VitoolError(
            path, "config file does not exist", "check the path, or name a packaged recipe (vitool recipes)"
        )
    try:
        values = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VitoolError(path, f"is not valid TOML ({exc})", "fix the syntax") from None
    base = values.pop("base", None)
    if base is None:
        return [(path, values)]
    inside = (*_inside, path.resolve())
    base_path = (path.parent / str(base)).resolve()
    if not base_path.is_file() and recipe_path(str(base)) is not None:  # a packaged recipe by name
        base_path = recipe_path(str(base)).resolve()
    if base_path in inside:
        raise VitoolError(path, f"base = {base!r} leads back to this file", "remove the cycle of base keys")
    if not base_path.is_file():
        fix = "name a file relative to this one or a packaged recipe (vitool recipes)"
        raise VitoolError(path, f"base = {base!r}: {base_path} does not exist", fix)
    return [*config_layers(base_path, inside), (path, values)]


def read_config_file(path: Path) -> dict[str, Any]:
    """A TOML config's keys on top of those of its bases (``config_layers``)."""
    merged: dict[str, Any] = {}
    for _, values in config_layers(path):
        merged.update(values)
    return merged


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """The configuration of ``path`` (None: the defaults) with ``overrides`` (command-line values) on top,
    checked before anything starts: every key's type, range and choices, each error naming the file (or
    the command line) the value came from. The chosen method's options are validated and kept with their
    defaults; those of other methods in a file are left out, and an override of a key the method does not
    read is an error naming the methods that do."""
    values: dict[str, Any] = {}
    origins: dict[str, str | None] = {}
    layers: list[tuple[str | None, dict[str, Any]]] = []
    if path is not None:
        path = resolve_config(path)
        layers = [(str(p), v) for p, v in config_layers(path)]
    layers.append((COMMAND_LINE, {k: v for k, v in overrides.items() if v is not None}))
    options: dict[str, Any] = {}
    set_options: set[str] = set()
    for where, layer in layers:
        layer = _split_method_options(dict(layer), where if where != COMMAND_LINE else None)
        own = layer.pop("method_options", {})
        options.update(own)
        if where == COMMAND_LINE:
            set_options |= set(own)
        values.update(layer)
        origins.update(dict.fromkeys([*layer, *own], where))
    check_keys(TrainConfig, values, origins, RULES)
    from vitool.methods.registry import method_spec, methods, option_keys

    method = values.get("method", TrainConfig.method)
    if method not in methods():
        raise VitoolError(origins.get("method"), f"method = {method!r}", f"use one of {', '.join(methods())}")
    cls = method_spec(method).options_class()
    own = {f.name for f in fields(cls)} if cls is not None else set()
    foreign = sorted(set_options - own)
    if foreign:
        readers = option_keys()[foreign[0]]
        raise VitoolError(
            COMMAND_LINE,
            f"{foreign[0]} is not read by method {method}",
            f"it belongs to {', '.join(readers)}: drop it, or train one of those",
        )
    options = {k: v for k, v in options.items() if k in own}
    if cls is not None:  # the types here; the ranges by the options' own check, which shows values as typed
        check_keys(cls, options, origins, convert=False)
    config = TrainConfig(**values)
    if config.stage_start == "best" and config.val_ids <= 0:  # best.pt is chosen on the held-out identities
        raise VitoolError(
            origins.get("stage_start"), 'stage_start = "best" needs held-out identities', "set val_ids > 0"
        )
    from vitool.methods.registry import method_options

    try:
        made = method_options(method, options)
    except VitoolError as exc:  # the options' own check names the key first: "key = value: use ..."
        key = exc.problem.partition(": ")[2].partition(" ")[0]
        raise VitoolError(origins.get(key, str(path) if path else None), exc.problem, exc.fix) from None
    config.method_options = asdict(made) if made is not None else {}
    return config


def field_notes(cls: type) -> dict[str, str]:
    """Each field's meaning from the comments beside it in ``cls``'s source (the block just above the
    field, then its line's own comment): the comments stay the one place a key is explained."""
    import inspect
    import textwrap

    names = {f.name for f in fields(cls)}
    notes: dict[str, str] = {}
    for klass in cls.__mro__:  # a field inherited from a base class is explained in the base's source
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # a class without source (object, or one built at run time)
            continue
        block: list[str] = []
        for line in source.splitlines():
            text = line.strip()
            if text.startswith("#"):
                block.append(text.lstrip("# "))
                continue
            name, colon, rest = text.partition(":")
            if colon and name in names and name not in notes:
                notes[name] = " ".join([*block, rest.partition("  # ")[2].strip()]).strip()
            block = []
    return notes


def key_reference() -> list[dict[str, Any]]:
    """Every training key: its name, type, default, meaning and the methods that read it (none: the engine),
    for ``vitool recipes --keys``."""
    from vitool.methods.registry import methods

    rows: dict[str, dict[str, Any]] = {}
    classes = [(TrainConfig, None)] + [(s.options_class(), s.name) for s in methods().values()]
    for cls, method in classes:
        if cls is None:
            continue
        notes, hints = field_notes(cls), get_type_hints(cls)
        for f in fields(cls):
            if f.name == "method_options":
                continue
            if f.name in rows:
                rows[f.name]["methods"].append(method)
                continue
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            kind = hints[f.name]
            rows[f.name] = {
                "key": f.name,
                "type": getattr(kind, "__name__", str(kind)) if get_origin(kind) is None else str(kind),
                "default": default,
                "allowed": RULES[f.name][1] if method is None and f.name in RULES else "",
                "meaning": notes.get(f.name, ""),
                "methods": [] if method is None else [method],
            }
    return list(rows.values())


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; the value is read as TOML (a bare word is a string)."""
    from vitool.methods.registry import option_keys

    out: dict[str, Any] = {}
    known = KEYS | option_keys().keys() if items else KEYS  # every method's keys, looked up once
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise VitoolError(None, f"--set {item}", "use --set KEY=VALUE with a key of `vitool recipes --keys`")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def dump_config(config: TrainConfig) -> str:
    lines = []
    values = config.to_dict()
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f"{key} = {json.dumps(value)}")
        elif isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass
class RecipeSummary:
    name: str
    dataset: str
    method: str
    backbone: str
    epochs: int
    gpus: str
    summary: str


def describe_recipe(name: str) -> RecipeSummary:
    """A packaged recipe's dataset, method, backbone, epochs and its two header notes."""
    path = recipe_path(name)
    if path is None:
        raise VitoolError(None, f"no packaged recipe '{name}'", f"use one of {', '.join(recipe_names())}")
    notes = {}
    for line in path.read_text().splitlines()[:2]:
        key, _, value = line.lstrip("# ").partition(":")
        notes[key] = value.strip()
    values = read_config_file(path)
    return RecipeSummary(
        name=name,
        dataset=str(values.get("dataset", "sysu")),
        method=str(values.get("method", "supervised")),
        backbone=str(values.get("backbone", "resnet50")),
        epochs=int(values.get("epochs", 81)),
        gpus=notes.get("gpus", ""),
        summary=notes.get("recipe", ""),
    )


def describe_recipes() -> list[dict]:
    return [asdict(describe_recipe(name)) for name in recipe_names()]


def recipe_lines(rows: list[dict[str, Any]]) -> list[str]:
    """``describe_recipes()`` as `vitool recipes` lists them: name, dataset, method, backbone, GPUs, summary."""
    width = max(len(r["name"]) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r['name']:<{width}}  {r['dataset']:<5} {r['method']:<10} {r['backbone']:<12} GPUs: {r['gpus']}")
        lines.append(f"{'':<{width}}  {r['summary']}")
    return lines


def key_lines(rows: list[dict[str, Any]]) -> list[str]:
    """``key_reference()`` as `vitool recipes --keys` lists it: key, type, default as TOML writes it, the
    methods that read it, then what is allowed and what it means."""
    lines = []
    for r in rows:
        readers = f"  [{', '.join(r['methods'])}]" if r["methods"] else ""
        lines.append(f"{r['key']}: {r['type']} = {json.dumps(r['default'])}{readers}")
        text = "; ".join(x for x in (f"allowed: {r['allowed']}" if r["allowed"] else "", r["meaning"]) if x)
        lines += [f"    {text}"] if text else []
    return lines

"""Training configuration: defaults, a TOML file, then command-line values, in that order of precedence.

The engine's keys are TrainConfig's fields; each method's own keys are the fields of its options dataclass
(vitool.methods.registry), flat beside them in the file. The effective configuration (the engine's keys
and the chosen method's) is saved as ``config.toml`` in the run folder, and ``--resume`` reads it back.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vitool.errors import VitoolError


@dataclass
class TrainConfig:
    dataset: str = "sysu"
    root: str = ""
    trial: int = 1
    method: str = "supervised"  # supervised | otla | visible | experts | dcl | pclhd | mult | a plugin's
    # otla / visible: visible labels (e.g. vitool cluster output); experts: per-modality labels
    # (vitool weak-labels output); none = derived from the ground truth
    labels: str = ""
    backbone: str = "resnet50"
    pretrained: str = "imagenet"
    height: int = 0  # 0: the backbone's default (288x144 for resnet50, 128x64 otherwise)
    width: int = 0
    epochs: int = 81
    ids_per_batch: int = 0  # 0: the method's (AGW 8 x 4, OTLA 4 x 8)
    images_per_id: int = 0
    batches_per_epoch: int = 0  # 0: max(#visible, #infrared) // batch + 1, as AGW
    optimizer: str = "sgd"
    lr: float = 0.1  # heads (BNNeck, classifier); the backbone gets lr * backbone_lr_factor
    backbone_lr_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # The learning-rate schedule restarts at every schedule stage: warm-up, then a step by gamma at each
    # milestone, counted from the stage's start. A milestone >= 1 is an epoch of the stage; one in (0, 1)
    # is a fraction of the stage's length (rounded), so stages of different lengths decay at the same places.
    warmup_epochs: int = 10
    # the warm-up's multipliers: 0 AGW's (e + 1) / warmup_epochs (0.1, 0.2, ..., 1.0 over 10 epochs); f > 0
    # linear from f: f + (1 - f) e / warmup_epochs (the experts' released 0.01, 0.109, ..., 0.901); -1: the
    # method's (experts 0.01, others 0)
    warmup_factor: float = -1.0
    milestones: list[float] = field(default_factory=lambda: [20, 50])
    gamma: float = 0.1
    # epochs at which a new schedule stage starts; [-1]: the method's stage switch where its released code
    # restarts there (pclhd: dcl_epochs, experts: experts_stage1_epochs), else none; []: one schedule
    schedule_stages: list[int] = field(default_factory=lambda: [-1])
    stage_optimizer_restart: bool = True  # a new schedule stage also clears the optimiser's state (Adam's moments)
    erasing: float = 0.0
    visible_grayscale: float = -1.0  # chance a visible training image turns gray; -1: the method's (OTLA 0.5, AGW 0)
    # chance a visible training image becomes one of its colour channels, thrice; -1: the method's
    # (dcl / pclhd / mult 0.5, others 0)
    visible_channel_exchange: float = -1.0
    val_ids: int = 0  # identities held out of training to choose best.pt (never the test set)
    eval_every: int = 1
    seed: int = 0
    device: str = "auto"
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


KEYS = {f.name for f in fields(TrainConfig)} - {"method_options"} | {"experts_restart_schedule"}  # a legacy alias


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
        raise VitoolError(where, f"unknown keys {', '.join(bad)}", "see `vitool train --help` for the keys")
    options = {k: values.pop(k) for k in unknown}
    return {**values, "method_options": options}


def read_config_file(path: Path, _inside: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A TOML config's keys on top of those of the file its ``base`` key names (a path relative to it),
    as fast-reid's ``_BASE_``: a variant states only what it changes (recipes/demo-mult.toml). A base that is
    no file there may name a packaged recipe (``base = "pclhd"``)."""
    if not path.is_file():
        raise VitoolError(
            path, "config file does not exist", "check the path, or name a packaged recipe (vitool recipes)"
        )
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise VitoolError(path, f"is not valid TOML ({exc})", "fix the syntax") from None
    base = values.pop("base", None)
    if base is None:
        return values
    from vitool.engine.recipes import recipe_path

    inside = (*_inside, path.resolve())
    base_path = (path.parent / str(base)).resolve()
    if not base_path.is_file() and recipe_path(str(base)) is not None:  # a packaged recipe by name
        base_path = recipe_path(str(base)).resolve()
    if base_path in inside:
        raise VitoolError(path, f"base = {base!r} leads back to this file", "remove the cycle of base keys")
    if not base_path.is_file():
        fix = "name a file relative to this one or a packaged recipe (vitool recipes)"
        raise VitoolError(path, f"base = {base!r}: {base_path} does not exist", fix)
    return read_config_file(base_path, inside) | values


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """The configuration of ``path`` (None: the defaults) with ``overrides`` on top; the chosen method's
    options are validated and kept with their defaults (those of other methods are dropped)."""
    values: dict[str, Any] = {}
    if path is not None:
        from vitool.engine.recipes import resolve_config

        path = resolve_config(path)
        values = _split_method_options(read_config_file(path), path)
    overrides = _split_method_options({k: v for k, v in overrides.items() if v is not None}, None)
    values["method_options"] = {**values.get("method_options", {}), **overrides.pop("method_options", {})}
    values.update(overrides)
    if values.pop("experts_restart_schedule", True) is False and "schedule_stages" not in values:
        values["schedule_stages"] = []  # the key before schedule_stages (run folders of vitool 0.1)
    try:
        config = TrainConfig(**values)
    except TypeError as exc:
        raise VitoolError(path, f"bad config ({exc})", "see `vitool train --help`") from None
    from vitool.methods.registry import method_options, methods

    if config.method not in methods():
        raise VitoolError(path, f"method = {config.method!r} is not a method", f"use one of {', '.join(methods())}")
    options = method_options(config.method, config.method_options, path)
    config.method_options = asdict(options) if options is not None else {}
    for key in ("erasing", "visible_grayscale", "visible_channel_exchange"):  # chances; -1 = the method's
        value = getattr(config, key)
        if not (0 <= value <= 1 or (value == -1 and key != "erasing")):
            fix = "use a probability in [0, 1]" + ("" if key == "erasing" else " or -1 (the method's)")
            raise VitoolError(path, f"{key} = {value}", fix)
    if config.workers < -1:
        raise VitoolError(
            path, f"workers = {config.workers}", "use a count >= 0, or -1 (0 on a CPU, up to 8 with a GPU)"
        )
    if not (0 <= config.warmup_factor <= 1 or config.warmup_factor == -1):
        raise VitoolError(path, f"warmup_factor = {config.warmup_factor}", "use a value in [0, 1] or -1 (the method's)")
    if any(m <= 0 for m in config.milestones):
        fix = "use epochs >= 1 or fractions in (0, 1) of a stage"
        raise VitoolError(path, f"milestones = {config.milestones}", fix)
    if config.schedule_stages != [-1] and any(s < 1 for s in config.schedule_stages):
        raise VitoolError(path, f"schedule_stages = {config.schedule_stages}", "use epochs >= 1, [] or [-1]")
    return config


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; the value is read as TOML (a bare word is a string)."""
    from vitool.methods.registry import option_keys

    out: dict[str, Any] = {}
    known = KEYS | option_keys().keys() if items else KEYS  # every method's keys, looked up once
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise VitoolError(None, f"--set {item}", "use --set KEY=VALUE with a key of `vitool train --help`")
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

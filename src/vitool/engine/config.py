"""Training configuration: defaults, a TOML file, then command-line values, in that order of precedence.

Every option of ``vitool train`` is a key here; the effective configuration is saved as
``config.toml`` in the run folder, and ``--resume`` reads it back.
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
    workers: int = 0
    image_cache: str = ""  # an HDF5 image cache at the model's size (vitool cache)
    tensorboard: bool = False  # also write each epoch's numbers as TensorBoard events (extra: tensorboard)
    ot_lambda: float = 25.0  # otla: Sinkhorn sharpness (entropic regularisation 1 / ot_lambda)
    ot_init: str = "prototypes"  # otla: first infrared labels from ImageNet class centres, or "random"
    # otla: the GRL ramp ends after this share of the run's steps (0.177 = the paper's max_iter 10,000 of
    # the released 81 x 696-step SYSU run); 0: the literal max_iter 10,000, counted in grl_step units
    grl_ramp: float = 0.177
    grl_step: int = 1  # otla, with grl_ramp = 0: GRL iterations per training step (reference: 1 SYSU, 5 RegDB)
    ot_oracle: bool = False  # otla diagnostic: true infrared identities instead of the Sinkhorn bank
    experts_stage1_epochs: int = 20  # experts: HEL epochs before CRE / CMCL / CLAE (SYSU 20, LLCM 80, RegDB 50)
    experts_weak_start: int = 30  # experts: stage-2 epoch from which the weak (exclusion) loss runs
    experts_sharpen: float = 3.0  # experts: CRE multiplies the expert logits by this before the softmax
    experts_proto_new_weight: float = 0.8  # experts: prototype <- (1 - w) prototype + w batch mean
    experts_detach_ce: bool = False  # experts: true = stage 2 trains the experts on detached features (released code)
    experts_oracle: bool = False  # experts diagnostic: every true identity pair as a consistent match, no CRE
    experts_triplet_weight: float = 0.25  # experts: lambda_1, each WRT term
    experts_weak_weight: float = 0.25  # experts: lambda_2, the weak loss
    # dcl / pclhd / mult: each modality re-clustered every epoch (k-reciprocal Jaccard + DBSCAN)
    cluster_eps: float = 0.6  # DBSCAN radius (SYSU and LLCM 0.6, RegDB 0.3)
    cluster_k1: int = 30
    cluster_k2: int = 6
    cluster_min_samples: int = 4
    cluster_oracle: bool = False  # dcl / pclhd / mult diagnostic: each modality's true identities as its clusters
    memory_temperature: float = 0.05  # ClusterNCE temperature of every cluster memory
    memory_momentum: float = 0.1  # weight of the old prototype in each memory update
    dcl_epochs: int = -1  # pclhd / mult: DCL epochs before their own stage; -1: the paper's (PCLHD 50, MULT 40)
    # pclhd / mult: hungarian | mult | ot; "": the method's own (PCLHD hungarian, MULT mult); oracle: diagnostic
    association: str = ""
    pclhd_lambda: float = 0.5  # pclhd: weight of HPCL; DPCL gets 1 - lambda
    # pclhd: the momentum encoder's half-life as a share of stage 2's steps (0.0693 = beta 0.999 over the
    # released 50 x 200-step stage 2); 0: pclhd_momentum_encoder is the beta, literally
    pclhd_ema_half_life: float = 0.0693
    pclhd_momentum_encoder: float = 0.999  # pclhd, with pclhd_ema_half_life = 0: beta of the momentum encoder
    pclhd_dynamic_samples: int = 16  # pclhd: M, dynamic samples per cluster and epoch
    pclhd_released_dynamic: bool = False  # pclhd: true = the released DPCL (momentum-encoder queries: no gradient)
    pclhd_cross_weight: float = 0.25  # pclhd: PGM's cross-modal term
    mult_alpha: float = 0.2  # mult: weight of the initial labels in the label transfer
    mult_soft_weight: float = 0.7  # mult: soft label = w one-hot + (1 - w) transfer
    mult_sharpen: float = 0.2  # mult: OCLR target temperature on the memory logits
    # options of methods from other packages (vitool.methods entry points): flat keys in the TOML file
    method_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def stages(self, method_restart: int | None = None) -> list[int]:
        """The epochs that start a new schedule stage, ``[-1]`` resolved to the method's restart."""
        stages = self.schedule_stages
        if stages == [-1]:
            stages = [method_restart] if method_restart is not None else []
        return sorted(s for s in stages if 0 < s < self.epochs)

    def lr_at(self, epoch: int, stages: list[int] | tuple[int, ...] = ()) -> float:
        """AGW's schedule (linear warm-up, then steps at the milestones), restarted at each of ``stages``."""
        begin, end = stage_of(epoch, stages, self.epochs)
        e = epoch - begin
        if e < self.warmup_epochs:
            return self.lr * (e + 1) / self.warmup_epochs
        steps = [m if m >= 1 else int(m * (end - begin) + 0.5) for m in self.milestones]  # half up
        return self.lr * self.gamma ** sum(e >= s for s in steps)


def stage_of(epoch: int, stages: list[int] | tuple[int, ...], epochs: int) -> tuple[int, int]:
    """The first epoch of the schedule stage that holds ``epoch`` and the first epoch after it."""
    return max([0, *[s for s in stages if s <= epoch]]), min([epochs, *[s for s in stages if s > epoch]])


KEYS = {f.name for f in fields(TrainConfig)} - {"method_options"} | {"experts_restart_schedule"}  # a legacy alias


def _split_plugin_options(values: dict[str, Any], where: Path | None) -> dict[str, Any]:
    """Move the keys that plugin methods declare into ``method_options``; any other unknown key is an error."""
    unknown = sorted(set(values) - KEYS)
    if not unknown:
        return values
    from vitool.methods.registry import plugin_option_keys

    plugin_keys = plugin_option_keys()
    bad = [k for k in unknown if k not in plugin_keys]
    if bad:
        raise VitoolError(where, f"unknown keys {', '.join(bad)}", "see `vitool train --help` for the keys")
    options = {k: values.pop(k) for k in unknown}
    return {**values, "method_options": options}


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise VitoolError(path, "config file does not exist", "check the path")
        try:
            values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise VitoolError(path, f"is not valid TOML ({exc})", "fix the syntax") from None
        values = _split_plugin_options(values, path)
    overrides = _split_plugin_options({k: v for k, v in overrides.items() if v is not None}, None)
    values["method_options"] = {**values.get("method_options", {}), **overrides.pop("method_options", {})}
    values.update(overrides)
    if values.pop("experts_restart_schedule", True) is False and "schedule_stages" not in values:
        values["schedule_stages"] = []  # the key before schedule_stages (run folders of vitool 0.1)
    try:
        config = TrainConfig(**values)
    except TypeError as exc:
        raise VitoolError(path, f"bad config ({exc})", "see `vitool train --help`") from None
    from vitool.methods.registry import methods

    if config.method not in methods():
        raise VitoolError(path, f"method = {config.method!r} is not a method", f"use one of {', '.join(methods())}")
    for key in ("erasing", "visible_grayscale", "visible_channel_exchange"):  # chances; -1 = the method's
        value = getattr(config, key)
        if not (0 <= value <= 1 or (value == -1 and key != "erasing")):
            fix = "use a probability in [0, 1]" + ("" if key == "erasing" else " or -1 (the method's)")
            raise VitoolError(path, f"{key} = {value}", fix)
    if any(m <= 0 for m in config.milestones):
        fix = "use epochs >= 1 or fractions in (0, 1) of a stage"
        raise VitoolError(path, f"milestones = {config.milestones}", fix)
    if config.schedule_stages != [-1] and any(s < 1 for s in config.schedule_stages):
        raise VitoolError(path, f"schedule_stages = {config.schedule_stages}", "use epochs >= 1, [] or [-1]")
    return config


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs; the value is read as TOML (a bare word is a string)."""
    from vitool.methods.registry import plugin_option_keys

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or (key not in KEYS and key not in plugin_option_keys()):
            raise VitoolError(None, f"--set {item}", "use --set KEY=VALUE with a key of `vitool train --help`")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def dump_config(config: TrainConfig) -> str:
    lines = []
    values = config.to_dict()
    values.update(values.pop("method_options"))  # flat, as they were given
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f"{key} = {json.dumps(value)}")
        elif isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"

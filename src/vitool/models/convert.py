"""Read the checkpoints of the field's released code into vitool checkpoints (``vitool convert``).

Each format is a released repository's own ``torch.save`` layout. Its network is rebuilt as a
:class:`~vitool.models.network.VIReIDNet` whose options say how it differs from AGW (no ReLU in a stem,
a learned GeM exponent, one shared stream, average pooling), with the repository's test-time recipe (flip
averaging, L2 normalisation) in the model config, so that ``extract-features --checkpoint`` reproduces the
repository's own test features. All five use 288x144 inputs with ImageNet mean and std, and the BNNeck
feature as the embedding.

- ``agw``: Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021
  (arXiv:2001.04193), mangye16/Cross-Modal-Re-ID-baseline ``train.py``: ``{'net', 'cmc', 'mAP', 'mINP',
  'epoch'}``, ``embed_net`` with non-local blocks and GeM p = 3; test: L2(BN feature), no flip.
- ``pclhd``: the same network saved from ``nn.DataParallel`` as ``{'state_dict', 'epoch', 'best_mAP'}``
  (released PCLHD, ``clustercontrast/models/agw.py``); test: L2 of the mean of the L2-normalised BN features
  of the image and its mirror.
- ``mult``: the released MULT ``BaseResNet``: AGW's names, non-local off in its test, a discriminator
  ``disnet.*`` and an unused ``gem.p``; ``{'state_dict'}`` or ``{'net'}``; test as pclhd.
- ``otla``: the released OTLA ``BaseResNet``: one shared ResNet-50 (``layer0`` = conv1, bn1, relu,
  maxpool; ``layer1``-``layer4``), average pooling, ``bottleneck``; ``{'main_net', ...}`` or ``{'net'}``;
  test: L2(BN feature), no flip.
- ``wsl``: the released heterogeneous-experts code, ``models/agw.py``: stems ``rgb_layers`` /
  ``ir_layers`` = conv1, bn1, maxpool (no ReLU), ``common_layers.0``-``3`` = layer1-4, learned GeM
  ``GAP.p`` (clamp 1e-6), ``BN``; ``{'backbone', 'classifier1', 'classifier2', 'classifier3'}``; test:
  L2 of the mean of the BN features of the image and its mirror.

Keys a test feature never uses (classifiers, discriminators, the unused layers of AGW's stem copies) are
dropped and listed in the converted file; any other missing, unexpected or mis-shaped key is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vitool.errors import VitoolError
from vitool.models import RELEASED_FORMATS as FORMATS
from vitool.models.checkpoint import load_safe, save_checkpoint
from vitool.models.network import ModelConfig, VIReIDNet

RESNET50_BLOCKS = (3, 4, 6, 3)
NON_LOCAL = {2: 2, 3: 3}  # AGW: non-local blocks after the last 2 blocks of layer2 and the last 3 of layer3


@dataclass
class Converted:
    """A released checkpoint in vitool's terms: the model config, its weights, and what was left out."""

    format: str
    model: VIReIDNet
    dropped: list[str]
    source_meta: dict[str, Any] = field(default_factory=dict)


def _strip_module(state: dict[str, Any]) -> dict[str, Any]:
    """``nn.DataParallel`` prefixes every key with ``module.``; the layouts below are without it."""
    if state and all(k.startswith("module.") for k in state):
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


def _trunk_positions(blocks: int, non_local: int) -> tuple[list[int], list[int]]:
    """Positions of a ResNet stage's blocks and of its non-local blocks in vitool's trunk stage, which
    places a non-local block after each of the last ``non_local`` blocks."""
    block_pos, nl_pos, pos = [], [], 0
    for i in range(blocks):
        block_pos.append(pos)
        pos += 1
        if i >= blocks - non_local:
            nl_pos.append(pos)
            pos += 1
    return block_pos, nl_pos


_NL_PARTS = {"g.0": "g", "theta": "theta", "phi": "phi", "W.0": "out.0", "W.1": "out.1"}


def _map_trunk(source_prefix: Callable[[int], str], non_local: bool) -> list[tuple[str, str]]:
    """(source prefix, vitool prefix) pairs of layer1-4's blocks, and of AGW's ``NL_2`` / ``NL_3``."""
    pairs = []
    for layer, blocks in enumerate(RESNET50_BLOCKS, start=1):
        count = NON_LOCAL.get(layer, 0) if non_local else 0
        block_pos, nl_pos = _trunk_positions(blocks, count)
        pairs += [(f"{source_prefix(layer)}.{b}.", f"trunk.{layer - 1}.{p}.") for b, p in enumerate(block_pos)]
        for k, p in enumerate(nl_pos):
            pairs += [(f"NL_{layer}.{k}.{src}.", f"trunk.{layer - 1}.{p}.{dst}.") for src, dst in _NL_PARTS.items()]
    return pairs


def _agw_layout(non_local: bool) -> list[tuple[str, str]]:
    stems = [
        ("visible_module.visible.conv1.", "stems.0.0."),
        ("visible_module.visible.bn1.", "stems.0.1."),
        ("thermal_module.thermal.conv1.", "stems.1.0."),
        ("thermal_module.thermal.bn1.", "stems.1.1."),
    ]
    return [*stems, *_map_trunk(lambda n: f"base_resnet.base.layer{n}", non_local), ("bottleneck.", "bnneck.")]


def _otla_layout() -> list[tuple[str, str]]:
    stem = [("layer0.0.", "stems.0.0."), ("layer0.1.", "stems.0.1.")]
    return [*stem, *_map_trunk(lambda n: f"layer{n}", False), ("bottleneck.", "bnneck.")]


def _wsl_layout() -> list[tuple[str, str]]:
    stems = [("rgb_layers.0.", "stems.0.0."), ("rgb_layers.1.", "stems.0.1."), ("ir_layers.0.", "stems.1.0."),
             ("ir_layers.1.", "stems.1.1.")]  # fmt: skip
    return [*stems, *_map_trunk(lambda n: f"common_layers.{n - 1}", False), ("BN.", "bnneck.")]


# Keys a test feature never reads: dropped, and listed in the converted file.
_UNUSED = {
    "agw": r"(visible_module\.visible|thermal_module\.thermal)\.(layer\d|fc)\."
    r"|base_resnet\.base\.(conv1|bn1|fc)\.|classifier\.",
    "otla": r"bottleneck_\d\.|classifier\.|disnet\.",
    "wsl": r"GAP\.p$|classifier\d?\.",
}
_UNUSED["pclhd"] = _UNUSED["agw"]
_UNUSED["mult"] = _UNUSED["agw"] + r"|disnet\.|gem\.p$|NL_\d\."


def _network_state(fmt: str, obj: Any, where: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The network's state dict inside a released file, and the file's other scalar entries."""
    container = {"agw": ("net",), "pclhd": ("state_dict",), "mult": ("state_dict", "net"), "otla": ("main_net", "net"),
                 "wsl": ("backbone",)}[fmt]  # fmt: skip
    if not isinstance(obj, dict):
        raise VitoolError(where, f"is not a {fmt} checkpoint (holds a {type(obj).__name__}, not a dict)", _HINT)
    key = next((k for k in container if isinstance(obj.get(k), dict)), None)
    if key is None:
        found = ", ".join(map(str, list(obj)[:6])) or "nothing"
        raise VitoolError(where, f"is not a {fmt} checkpoint: no {' or '.join(container)} dict (has {found})", _HINT)
    meta = {k: v for k, v in obj.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
    if fmt == "wsl":  # the expert classifiers are saved beside the backbone
        meta["dropped_entries"] = sorted(k for k in obj if k.startswith("classifier"))
    return _strip_module(obj[key]), meta


_HINT = f"give --from {'|'.join(FORMATS)} matching the repository that saved it, or --from auto"


def detect_format(obj: Any) -> str | None:
    """The released format whose layout ``obj`` has, from its keys; None when none fits."""
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("backbone"), dict) and any(k.startswith("classifier") for k in obj):
        return "wsl"
    inner = next((obj[k] for k in ("main_net", "net", "state_dict") if isinstance(obj.get(k), dict)), None)
    if inner is None:
        return None
    keys = _strip_module(inner).keys()
    if "layer0.0.weight" in keys:
        return "otla"
    if "base_resnet.base.layer1.0.conv1.weight" not in keys:
        return None
    if any(k.startswith("disnet.") or k == "gem.p" for k in keys):
        return "mult"
    return "pclhd" if "state_dict" in obj else "agw"


def convert_state(fmt: str, obj: Any, where: Path) -> Converted:
    """The vitool model config and weights of a released checkpoint object ``obj`` in format ``fmt``."""
    state, meta = _network_state(fmt, obj, where)
    non_local = fmt in ("agw", "pclhd") and "NL_2.0.theta.weight" in state
    config = ModelConfig("resnet50", non_local=non_local, test_l2=True)
    if fmt in ("pclhd", "mult"):
        config.test_flip = "mean_of_l2"
    if fmt == "otla":
        config.two_stream, config.gem_p = False, 1.0
    if fmt == "wsl":
        if "GAP.p" not in state:
            raise VitoolError(where, "is not a wsl checkpoint: its backbone has no GAP.p (the GeM exponent)", _HINT)
        config.stem_relu, config.gem_clamp, config.test_flip = False, 1e-6, "mean"
        config.gem_p = float(torch.as_tensor(state["GAP.p"]).reshape(-1)[0])
    layout = {"agw": lambda: _agw_layout(non_local), "pclhd": lambda: _agw_layout(non_local),
              "mult": lambda: _agw_layout(False), "otla": _otla_layout, "wsl": _wsl_layout}[fmt]()  # fmt: skip
    unused = re.compile(_UNUSED[fmt])
    renamed, dropped, unexpected = {}, [], []
    for key, value in state.items():
        target = next((dst + key[len(src) :] for src, dst in layout if key.startswith(src)), None)
        if target is not None:
            renamed[target] = value
        elif unused.match(key):
            dropped.append(key)
        else:
            unexpected.append(key)
    model = VIReIDNet(config, pretrained="none")
    expected = model.state_dict()
    for key in expected:  # BN step counters, absent from files of PyTorch before 0.4.1, are never read in eval
        if key.endswith("num_batches_tracked") and key not in renamed:
            renamed[key] = expected[key]
    missing = [k for k in expected if k not in renamed]
    problems = []
    if unexpected:
        problems.append(f"unexpected keys {', '.join(unexpected[:4])}")
    if missing:
        problems.append(f"missing keys for {', '.join(_source_names(missing[:4], layout))}")
    shapes = [k for k, v in renamed.items() if k in expected and tuple(v.shape) != tuple(expected[k].shape)]
    if shapes:
        named = zip(_source_names(shapes[:3], layout), shapes[:3], strict=True)
        problems.append(f"mis-shaped {', '.join(f'{s} {tuple(renamed[k].shape)}' for s, k in named)}")
    if problems:
        raise VitoolError(where, f"does not fit the {fmt} layout: {'; '.join(problems)}", _HINT)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in renamed.items()})
    return Converted(fmt, model, sorted(dropped), meta)


def _source_names(targets: list[str], layout: list[tuple[str, str]]) -> list[str]:
    """The released names of vitool keys, for error messages in the user's terms."""
    return [next((src + t[len(dst) :] for src, dst in layout if t.startswith(dst)), t) for t in targets]


def convert_file(source: Path, fmt: str, output: Path, provenance: dict[str, Any]) -> Converted:
    """Read ``source`` (``weights_only=True``; numpy arrays and scalars allowed, as AGW's ``cmc`` needs),
    convert it and write a vitool checkpoint to ``output`` (atomically)."""
    obj = load_safe(source)
    detected = detect_format(obj)
    if fmt == "auto" and detected is None:
        raise VitoolError(source, f"matches none of the released layouts {', '.join(FORMATS)}", _HINT)
    if fmt not in ("auto", detected) and detected is not None:
        raise VitoolError(source, f"looks like a {detected} checkpoint, not {fmt}", f"use --from {detected} or auto")
    converted = convert_state(detected if fmt == "auto" else fmt, obj, source)
    extra = {
        "converted_from": {
            "format": converted.format,
            "dropped_keys": converted.dropped,
            "source": converted.source_meta,
        },
        "provenance": provenance,
    }
    save_checkpoint(output, converted.model, extra)
    return converted

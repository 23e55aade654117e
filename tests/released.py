"""Checkpoints as the released repositories' own ``torch.save`` writes them (AGW, PCLHD, MULT, OTLA, WSL
layouts with random weights): shared by the conversion tests and the API page's examples."""

from __future__ import annotations

import numpy as np
import torch
import torchvision

# --------------------------------------------------------------------------- released layouts, random weights


def _random_resnet(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = torchvision.models.resnet50(weights=None).state_dict()
    for key, value in state.items():  # BN statistics and affines away from identity, so every one matters
        if key.endswith("running_mean") or key.endswith(".bias") and value.dim() == 1:
            state[key] = torch.randn_like(value) * 0.1
        elif key.endswith("running_var") or key.endswith(".weight") and value.dim() == 1:
            state[key] = torch.rand_like(value) + 0.5
        if key.endswith("bn3.weight"):  # small residual branches keep 16 random blocks from overflowing
            state[key] = state[key] * 0.2
    return state


def _bn(prefix: str, channels: int, bias: bool = True) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}weight": torch.rand(channels) + 0.5,
        f"{prefix}bias": torch.randn(channels) * 0.1 if bias else torch.zeros(channels),
        f"{prefix}running_mean": torch.randn(channels) * 0.1,
        f"{prefix}running_var": torch.rand(channels) + 0.5,
        f"{prefix}num_batches_tracked": torch.tensor(7),
    }


def _non_local(prefix: str, channels: int) -> dict[str, torch.Tensor]:
    state = {}
    for name in ("g.0", "theta", "phi"):
        state[f"{prefix}{name}.weight"] = torch.randn(1, channels, 1, 1) * 0.05
        state[f"{prefix}{name}.bias"] = torch.randn(1) * 0.1
    state[f"{prefix}W.0.weight"] = torch.randn(channels, 1, 1, 1)
    state[f"{prefix}W.0.bias"] = torch.randn(channels) * 0.1
    return {**state, **_bn(f"{prefix}W.1.", channels)}


def _agw_net(non_local: bool, classes: int) -> dict[str, torch.Tensor]:
    """``embed_net``: two whole ResNet-50 stem copies, a third for layer1-4, NL_2 / NL_3, bottleneck."""
    state = {}
    for i, prefix in enumerate(("visible_module.visible.", "thermal_module.thermal.", "base_resnet.base.")):
        resnet = _random_resnet(i)
        if i < 2:  # the stems' layer2-4 are as unused as their layer1 and fc; leaving them out keeps files small
            resnet = {k: v for k, v in resnet.items() if not k.startswith(("layer2", "layer3", "layer4"))}
        state.update({prefix + k: v for k, v in resnet.items()})
    if non_local:
        for k in range(2):
            state.update(_non_local(f"NL_2.{k}.", 512))
        for k in range(3):
            state.update(_non_local(f"NL_3.{k}.", 1024))
    state.update(_bn("bottleneck.", 2048, bias=False))
    if classes:
        state["classifier.weight"] = torch.randn(classes, 2048) * 0.001
    return state


def _discriminator() -> dict[str, torch.Tensor]:
    return {"disnet.fc1.weight": torch.randn(8, 16), "disnet.fc1.bias": torch.zeros(8)}


def _otla_net() -> dict[str, torch.Tensor]:
    resnet = _random_resnet(3)
    state = {f"layer0.0.{k[6:]}": v for k, v in resnet.items() if k.startswith("conv1.")}
    state.update({f"layer0.1.{k[4:]}": v for k, v in resnet.items() if k.startswith("bn1.")})
    state.update({k: v for k, v in resnet.items() if k.startswith("layer")})
    for i, channels in enumerate((64, 256, 512, 1024)):
        state.update(_bn(f"bottleneck_{i}.", channels, bias=False))
    state.update(_bn("bottleneck.", 2048, bias=False))
    state["classifier.weight"] = torch.randn(12, 2048) * 0.001
    return {**state, **_discriminator()}


def _wsl_net() -> dict[str, torch.Tensor]:
    state = {}
    for i, prefix in enumerate(("rgb_layers.", "ir_layers.")):
        resnet = _random_resnet(4 + i)
        state.update({f"{prefix}0.{k[6:]}": v for k, v in resnet.items() if k.startswith("conv1.")})
        state.update({f"{prefix}1.{k[4:]}": v for k, v in resnet.items() if k.startswith("bn1.")})
    resnet = _random_resnet(6)
    for n in range(4):
        state.update({f"common_layers.{n}.{k[7:]}": v for k, v in resnet.items() if k.startswith(f"layer{n + 1}.")})
    state["GAP.p"] = torch.tensor([3.4])
    return {**state, **_bn("BN.", 2048, bias=True)}


def released_checkpoint(fmt: str) -> dict:
    """A file's content exactly as each released repository's own ``torch.save`` writes it."""
    torch.manual_seed(10)
    if fmt == "agw":
        scores = {"cmc": np.linspace(0.5, 1.0, 20), "mAP": np.float64(0.61), "mINP": np.float64(0.4)}
        return {"net": _agw_net(True, 395), **scores, "epoch": 60}
    if fmt == "pclhd":
        state = {f"module.{k}": v for k, v in _agw_net(True, 1000).items()}
        return {"state_dict": state, "epoch": 49, "best_mAP": 0.58}
    if fmt == "mult":
        state = {**_agw_net(False, 0), **_discriminator(), "gem.p": torch.tensor([3.0])}
        return {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    if fmt == "otla":
        return {"main_net": _otla_net(), "cmc": np.ones(20), "mAP": 0.5, "mINP": 0.3, "epoch": 80, "n_class": 12}
    return {"backbone": _wsl_net(), **{f"classifier{i}": {"weight": torch.randn(5, 2048)} for i in (1, 2, 3)}}

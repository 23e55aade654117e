"""Models: the AGW cross-modality network and its CPU variants, offline weights, checkpoints."""

from __future__ import annotations

from pathlib import Path

BACKBONES = ("resnet50", "resnet18", "mobilenet_v2")  # AGW's, and two that train on a CPU
RELEASED_FORMATS = ("agw", "pclhd", "mult", "otla", "wsl")  # the repositories whose checkpoints convert
TEST_FLIPS = ("none", "mean", "mean_of_l2")  # how test features average an image with its mirror image


def build_model(
    checkpoint: str | Path | None = None,
    backbone: str = "resnet50",
    pretrained: str = "imagenet",
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
):
    """The model a checkpoint describes (``height`` and ``width`` override its input size), or a fresh
    ``backbone`` with the given weights and input size."""
    import torch

    from vitool.models.checkpoint import model_from_checkpoint
    from vitool.models.network import ModelConfig, VIReIDNet

    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
        model.config.height, model.config.width = height or model.config.height, width or model.config.width
        return model
    torch.manual_seed(seed)  # the BNNeck and any layer without pretrained weights start from the seed
    config = ModelConfig.cpu_default(backbone)
    config.height, config.width = height or config.height, width or config.width
    return VIReIDNet(config, pretrained=pretrained)

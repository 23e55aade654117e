"""The AGW cross-modality network and its CPU-friendly variants (Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook", TPAMI 2021, arXiv 2001.04193; mangye16/Cross-Modal-Re-ID-baseline
``model.py``).

A modality-specific stem per modality (visible, infrared), a shared trunk with last stride 1, optional
non-local blocks, GeM pooling (p = 3) and a BNNeck. ``resnet50`` with non-local blocks is AGW; the
``resnet18`` and ``mobilenet_v2`` variants keep the same head so CPU runs exercise the same code.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vitool.models import BACKBONES, TEST_FLIPS
from vitool.models.weights import imagenet_state_dict

FEATURE_DIM = {"resnet50": 2048, "resnet18": 512, "mobilenet_v2": 1280}
# Multi-level features (OTLA's discriminator): the trunk children after which a level ends, and the
# channels of the stem and of each such level (the last level is the pooled trunk output itself).
LEVEL_ENDS = {"resnet50": (0, 1, 2), "resnet18": (0, 1, 2), "mobilenet_v2": (1, 4, 11)}
LEVEL_DIMS = {"resnet50": (64, 256, 512, 1024), "resnet18": (64, 64, 128, 256), "mobilenet_v2": (16, 24, 32, 96)}


@dataclass
class ModelConfig:
    backbone: str = "resnet50"
    two_stream: bool = True
    non_local: bool = True
    last_stride: int = 1
    gem_p: float = 3.0
    num_classes: int = 0
    height: int = 288
    width: int = 144
    stem_relu: bool = True  # False: conv1, bn1, maxpool with no ReLU between (the experts' released stems)
    gem_clamp: float = 0.0  # > 0: GeM clamps its input to this floor instead of adding 1e-12 to the mean
    gem_learned: bool = False  # the GeM exponent is a trained parameter starting at gem_p (the experts' code)
    bnneck_bias: bool = False  # the BNNeck's bias trains (the experts' code); AGW freezes it at 0
    # The test-time recipe, so that a converted released checkpoint reproduces its repository's features:
    # "none", "mean" (features of the image and its mirror averaged) or "mean_of_l2" (each L2-normalised
    # first), then, with test_l2, the result L2-normalised.
    test_flip: str = "none"
    test_l2: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def cpu_default(cls, backbone: str) -> ModelConfig:
        """The defaults per backbone: AGW at 288x144 for resnet50, 128x64 without non-local otherwise."""
        if backbone == "resnet50":
            return cls(backbone)
        return cls(backbone, non_local=False, height=128, width=64)


class NonLocal(nn.Module):
    """AGW's non-local block: dot-product affinity / N (no softmax), zero-initialised output BN.

    The embedding width is ``inter`` channels; AGW's released code uses 1 (reduc_ratio // reduc_ratio)
    and we keep that for parity.
    """

    def __init__(self, channels: int, inter: int = 1) -> None:
        super().__init__()
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.out = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # [B, N, i]
        phi = self.phi(x).flatten(2)  # [B, i, N]
        g = self.g(x).flatten(2).transpose(1, 2)  # [B, N, i]
        y = (theta @ phi / (h * w)) @ g
        return x + self.out(y.transpose(1, 2).reshape(b, -1, h, w))


class GeM(nn.Module):
    """Generalised-mean pooling with a fixed exponent (AGW uses p = 3, not learnable; p = 1 is average
    pooling), or a trained one (``learned``, the experts' released code). With ``clamp`` > 0 it is the
    learned-GeM form, clamp(x, clamp)^p averaged, to the 1/p. Computed in float32 whatever the autocast
    policy: in float16 the cube of small activations underflows and the 1/p root of 0 has no gradient."""

    def __init__(self, p: float = 3.0, clamp: float = 0.0, learned: bool = False) -> None:
        super().__init__()
        self.clamp = clamp
        self.p = nn.Parameter(torch.tensor([float(p)])) if learned else p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            if isinstance(self.p, float | int) and self.p == 1:
                return x.mean(dim=(2, 3))
            if self.clamp > 0:
                return x.clamp(min=self.clamp).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)
            return (x.clamp(min=0).pow(self.p).mean(dim=(2, 3)) + 1e-12).pow(1.0 / self.p)


def _with_non_local(layer: nn.Sequential, count: int) -> nn.Sequential:
    """Insert ``count`` non-local blocks after the last ``count`` blocks of a ResNet stage."""
    blocks = list(layer.children())
    last = blocks[-1]
    channels = (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features
    out = []
    for i, block in enumerate(blocks):
        out.append(block)
        if i >= len(blocks) - count:
            out.append(NonLocal(channels))
    return nn.Sequential(*out)


def _resnet_parts(config: ModelConfig, state: dict | None) -> tuple[nn.Module, nn.Module]:
    import torchvision

    net = getattr(torchvision.models, config.backbone)(weights=None)
    if state is not None:
        net.load_state_dict(state, strict=False)
    if config.last_stride == 1:
        block = net.layer4[0]
        (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu if config.stem_relu else nn.Identity(), net.maxpool)
    layer2, layer3 = net.layer2, net.layer3
    if config.non_local:  # AGW: 2 blocks at the end of layer2, 3 at the end of layer3
        layer2, layer3 = _with_non_local(layer2, 2), _with_non_local(layer3, 3)
    return stem, nn.Sequential(net.layer1, layer2, layer3, net.layer4)


def _mobilenet_parts(config: ModelConfig, state: dict | None) -> tuple[nn.Module, nn.Module]:
    import torchvision

    net = torchvision.models.mobilenet_v2(weights=None)
    if state is not None:
        net.load_state_dict(state, strict=False)
    features = net.features
    if config.last_stride == 1:  # features[14] is the last stride-2 inverted residual
        features[14].conv[1][0].stride = (1, 1)
    return features[:2], features[2:]


class VIReIDNet(nn.Module):
    """Routes each image through its modality's stem, then the shared trunk, GeM and BNNeck.

    ``forward(images, modality)`` returns ``pre_bn`` (pooled), ``feat`` (after BNNeck, the retrieval
    embedding) and, with a classifier, ``logits``.
    """

    def __init__(self, config: ModelConfig, pretrained: str = "none") -> None:
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {config.backbone}")
        self.config = config
        state = imagenet_state_dict(config.backbone, pretrained)
        builder = _mobilenet_parts if config.backbone == "mobilenet_v2" else _resnet_parts
        stem, self.trunk = builder(config, state)
        self.stems = nn.ModuleList([stem, copy.deepcopy(stem)] if config.two_stream else [stem])
        if config.test_flip not in TEST_FLIPS:
            raise ValueError(f"test_flip {config.test_flip!r} is not one of {', '.join(TEST_FLIPS)}")
        self.pool = GeM(config.gem_p, config.gem_clamp, config.gem_learned)
        dim = FEATURE_DIM[config.backbone]
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(config.bnneck_bias)
        nn.init.constant_(self.bnneck.weight, 1.0)
        nn.init.zeros_(self.bnneck.bias)
        self.classifier = None
        if config.num_classes > 0:
            self.classifier = nn.Linear(dim, config.num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)

    @property
    def feature_dim(self) -> int:
        return FEATURE_DIM[self.config.backbone]

    def stem(self, images: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        """Each image through its modality's stem. With ``modality`` on the host (as the engine passes it)
        routing needs no device sync; on the images' device it works too, with one sync per batch."""
        if len(self.stems) == 1:
            return self.stems[0](images)
        vis = modality == 0
        if vis.all():
            return self.stems[0](images)
        if (~vis).all():
            return self.stems[1](images)
        x_vis, x_ir = self.stems[0](images[vis]), self.stems[1](images[~vis])
        out = x_vis.new_empty((len(images), *x_vis.shape[1:]))
        out[vis], out[~vis] = x_vis, x_ir
        return out

    def forward(self, images: torch.Tensor, modality: torch.Tensor, levels: bool = False) -> dict[str, torch.Tensor]:
        """With ``levels``, also the global-average-pooled outputs of the stem and of the trunk stages
        before the last (``levels``: a list, LEVEL_DIMS wide), as OTLA's discriminator reads them."""
        x = self.stem(images, modality)
        if levels:
            pooled = [x.mean(dim=(2, 3))]
            ends = LEVEL_ENDS[self.config.backbone]
            for i, block in enumerate(self.trunk):
                x = block(x)
                if i in ends:
                    pooled.append(x.mean(dim=(2, 3)))
        else:
            x = self.trunk(x)
        pre_bn = self.pool(x)
        feat = self.bnneck(pre_bn)
        out = {"pre_bn": pre_bn, "feat": feat}
        if levels:
            out["levels"] = pooled
        if self.classifier is not None:
            out["logits"] = self.classifier(feat)
        return out

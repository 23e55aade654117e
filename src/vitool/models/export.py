"""ONNX export of a checkpoint's test-time embedding (``vitool export``), for use outside Python.

One graph for both modalities: inputs ``images`` (float32 [batch, 3, height, width], RGB, scaled to [0, 1]
then normalised with the ImageNet mean and std) and ``modality`` (int64 [batch]: 0 visible, 1 infrared),
output ``embedding`` (float32 [batch, dim]): exactly what ``extract-features`` stores as ``features``,
the checkpoint's test recipe (flip averaging, L2) included. The batch size is dynamic. A one-stream
network (a converted OTLA checkpoint) never reads the modality, and its graph has the ``images`` input only.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitool.errors import VitoolError
from vitool.models.features import recipe_outputs
from vitool.models.network import VIReIDNet

INPUTS, OUTPUT = ("images", "modality"), "embedding"


class Embedding(nn.Module):
    """A trained network as a traceable function of (images, modality): each image's stem is chosen with
    ``torch.where`` rather than by splitting the batch, so the graph has no data-dependent branch."""

    def __init__(self, net: VIReIDNet) -> None:
        super().__init__()
        self.net = net
        self.eval()  # the exporter restores the wrapper's mode on everything inside it afterwards

    def _forward(self, images: torch.Tensor, modality: torch.Tensor) -> dict[str, torch.Tensor]:
        stems = self.net.stems
        x = stems[0](images)
        if len(stems) > 1:
            x = torch.where((modality == 0).view(-1, 1, 1, 1), x, stems[1](images))
        pre_bn = self.net.pool(self.net.trunk(x))
        return {"pre_bn": pre_bn, "feat": self.net.bnneck(pre_bn)}

    def forward(self, images: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
        config = self.net.config
        return recipe_outputs(self._forward, images, modality, config.test_flip, config.test_l2)["feat"]


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise VitoolError(
            None, f"vitool export needs the '{module}' package", "pip install 'vitool[export]' (onnx and onnxruntime)"
        ) from None


def export_onnx(
    net: VIReIDNet, path: Path, opset: int = 17, provenance: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write the ONNX graph to ``path`` (``provenance`` as its metadata ``vitool_provenance``), check it, and
    run it in onnxruntime against torch on a batch of both modalities: returns the input size and the
    largest absolute difference."""
    onnx, ort = _require("onnx"), _require("onnxruntime")
    model = Embedding(net)
    config = net.config
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, config.height, config.width, generator=generator)
    modality = torch.tensor([0, 1, 1, 0])
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice is not the user's concern
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (images[:2], modality[:2]),
            str(path),
            dynamo=False,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={name: {0: "batch"} for name in (*INPUTS, OUTPUT)},
            opset_version=opset,
        )
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, {"vitool_provenance": json.dumps(provenance or {})})
    onnx.save(graph, str(path))
    onnx.checker.check_model(str(path))
    with torch.no_grad():
        expected = model(images, modality).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"images": images.numpy(), "modality": modality.numpy()}
    inputs = [i.name for i in session.get_inputs()]  # a one-stream network never reads the modality
    got = session.run([OUTPUT], {name: feeds[name] for name in inputs})[0]
    return {
        "inputs": inputs,
        "input_size": [config.height, config.width],
        "embedding_dim": int(expected.shape[1]),
        "max_abs_difference": float(np.abs(got - expected).max()),
        "opset": opset,
    }

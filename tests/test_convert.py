"""`vitool convert`: released checkpoints in each repository's own layout (random weights, built here from
the layouts the released code defines) give, through extract-features, the features that an independent
forward written from those layouts gives."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vitool.data.datasets import image_root, load_split
from vitool.errors import VitoolError
from vitool.io import read_features
from vitool.models import build_model
from vitool.models.checkpoint import save_checkpoint
from vitool.models.convert import convert_file, convert_state, detect_format
from vitool.models.features import extract
from vitool.models.network import ModelConfig, VIReIDNet

from .conftest import Payload, one_line_error, run_cli
from .released import released_checkpoint

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
LAYER_STRIDES = (1, 2, 2, 1)  # last stride 1 everywhere


# ------------------------------------------------------------------ an independent forward from those layouts


def _f_bn(x, sd, p):
    shape = (1, -1, 1, 1) if x.dim() == 4 else (1, -1)
    scale = sd[p + "weight"] / torch.sqrt(sd[p + "running_var"] + 1e-5)
    return (x - sd[p + "running_mean"].view(shape)) * scale.view(shape) + sd[p + "bias"].view(shape)


def _f_block(x, sd, p, stride):
    out = F.relu(_f_bn(F.conv2d(x, sd[p + "conv1.weight"]), sd, p + "bn1."))
    out = F.relu(_f_bn(F.conv2d(out, sd[p + "conv2.weight"], stride=stride, padding=1), sd, p + "bn2."))
    out = _f_bn(F.conv2d(out, sd[p + "conv3.weight"]), sd, p + "bn3.")
    if p + "downsample.0.weight" in sd:
        x = _f_bn(F.conv2d(x, sd[p + "downsample.0.weight"], stride=stride), sd, p + "downsample.1.")
    return F.relu(out + x)


def _f_non_local(x, sd, p):
    b, c, h, w = x.shape
    g = F.conv2d(x, sd[p + "g.0.weight"], sd[p + "g.0.bias"]).view(b, 1, -1).permute(0, 2, 1)
    theta = F.conv2d(x, sd[p + "theta.weight"], sd[p + "theta.bias"]).view(b, 1, -1).permute(0, 2, 1)
    phi = F.conv2d(x, sd[p + "phi.weight"], sd[p + "phi.bias"]).view(b, 1, -1)
    y = (theta @ phi / (h * w)) @ g
    y = y.permute(0, 2, 1).reshape(b, 1, h, w)
    return _f_bn(F.conv2d(y, sd[p + "W.0.weight"], sd[p + "W.0.bias"]), sd, p + "W.1.") + x


def released_forward(fmt: str, sd: dict, images: torch.Tensor, infrared: bool) -> torch.Tensor:
    """The BN feature of each image, as the released network computes it in eval mode."""
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if fmt == "otla":
        stem, conv, bn, relu = "layer0.", "0.weight", "1.", True
    elif fmt == "wsl":
        stem, conv, bn, relu = ("ir_layers." if infrared else "rgb_layers."), "0.weight", "1.", False
    else:
        stem = "thermal_module.thermal." if infrared else "visible_module.visible."
        conv, bn, relu = "conv1.weight", "bn1.", True
    x = _f_bn(F.conv2d(images, sd[stem + conv], stride=2, padding=3), sd, stem + bn)
    x = F.max_pool2d(F.relu(x) if relu else x, 3, 2, 1)
    non_local = fmt in ("agw", "pclhd")
    for layer, (blocks, stride) in enumerate(zip((3, 4, 6, 3), LAYER_STRIDES, strict=True), start=1):
        prefix = {"otla": f"layer{layer}.", "wsl": f"common_layers.{layer - 1}."}.get(
            fmt, f"base_resnet.base.layer{layer}."
        )
        nl_after = {2: [2, 3], 3: [3, 4, 5]}.get(layer, []) if non_local else []
        for i in range(blocks):
            x = _f_block(x, sd, f"{prefix}{i}.", stride if i == 0 else 1)
            if i in nl_after:
                x = _f_non_local(x, sd, f"NL_{layer}.{nl_after.index(i)}.")
    if fmt == "otla":
        pooled = x.mean(dim=(2, 3))
    elif fmt == "wsl":
        p = float(sd["GAP.p"])
        pooled = x.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1 / p)
    else:
        pooled = (x.pow(3).mean(dim=(2, 3)) + 1e-12).pow(1 / 3)
    return _f_bn(pooled, sd, "bottleneck." if fmt != "wsl" else "BN.")


def released_test_features(fmt: str, sd: dict, images: torch.Tensor, infrared: bool) -> torch.Tensor:
    """Each repository's test recipe around its network."""
    feat = released_forward(fmt, sd, images, infrared)
    if fmt in ("agw", "otla"):
        return F.normalize(feat, dim=1)
    mirrored = released_forward(fmt, sd, images.flip(3), infrared)
    if fmt == "wsl":
        return F.normalize((feat + mirrored) / 2, dim=1)
    return F.normalize((F.normalize(feat, dim=1) + F.normalize(mirrored, dim=1)) / 2, dim=1)


def _load_images(root, paths, height, width) -> torch.Tensor:
    out = []
    for path in paths:
        image = Image.open(root / path).convert("RGB").resize((width, height), Image.BILINEAR)
        tensor = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)
        out.append((tensor - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))
    return torch.stack(out)


def _network(obj: dict, fmt: str) -> dict:
    return {"agw": obj.get("net"), "pclhd": obj.get("state_dict"), "mult": obj.get("state_dict"),
            "otla": obj.get("main_net"), "wsl": obj.get("backbone")}[fmt]  # fmt: skip


# ----------------------------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def four_images(synth_root, tmp_path_factory):
    """A manifest of two visible and two infrared synthetic test images: extract-features stays short."""
    root = synth_root["sysu"]
    samples = load_split("sysu", root, "test")
    picked = [s for s in samples if s.modality == 0][:2] + [s for s in samples if s.modality == 1][:2]
    csv = tmp_path_factory.mktemp("manifest") / "four.csv"
    rows = [f"{image_root('sysu', root) / s.path},{s.pid},{s.cam},{s.modality},test" for s in picked]
    csv.write_text("path,pid,cam,modality,split\n" + "\n".join(rows) + "\n")
    return csv


@pytest.mark.parametrize("fmt", ["agw", "pclhd", "mult", "otla", "wsl"])
def test_converted_checkpoint_reproduces_the_released_test_features(fmt, four_images, tmp_path):
    obj = released_checkpoint(fmt)
    source = tmp_path / {"agw": "sysu_best.t", "pclhd": "model_best.pth.tar", "mult": "checkpoint.pth.tar",
                         "otla": "sysu_best.t", "wsl": "model_10.pth"}[fmt]  # fmt: skip
    torch.save(obj, source)
    assert detect_format(torch.load(source, weights_only=False)) == fmt
    out, features = tmp_path / "converted.pt", tmp_path / "test.h5"
    if fmt == "agw":  # the command once; in-process for the others (each command pays torch's import)
        result = run_cli("convert", source, "-o", out)  # --from auto
        assert result.returncode == 0, result.stderr
        assert "as agw (detected)" in result.stderr
    else:
        assert convert_file(source, "auto", out, provenance={}).format == fmt
    converted = torch.load(out, weights_only=True)  # a plain vitool checkpoint
    assert converted["converted_from"]["format"] == fmt
    assert (converted["model_config"]["height"], converted["model_config"]["width"]) == (288, 144)
    dropped = converted["converted_from"]["dropped_keys"]
    assert any("classifier" in k or "disnet" in k or "GAP.p" in k for k in dropped)

    # a small input size keeps the ResNet-50 forward fast; the recipe is the same
    if fmt == "agw":
        args = ["--dataset", "manifest", "--root", four_images, "--checkpoint", out, "--height", "64", "--width", "32"]
        result = run_cli("extract-features", *args, "-o", features, "--device", "cpu")
        assert result.returncode == 0, result.stderr
        fs = read_features(features)
        paths, modality, feats = fs.path, fs.modality, fs.features
    else:
        samples = load_split("manifest", four_images, "test")
        model = build_model(out, height=64, width=32)
        feats = extract(model, samples, image_root("manifest", four_images), torch.device("cpu"))["features"]
        paths, modality = np.array([s.path for s in samples]), np.array([s.modality for s in samples])
    for infrared in (False, True):
        rows = np.flatnonzero(modality == infrared)
        assert len(rows) == 2
        images = _load_images(four_images.parent, paths[rows], 64, 32)
        with torch.no_grad():
            expected = released_test_features(fmt, _network(obj, fmt), images, infrared).numpy()
        np.testing.assert_allclose(feats[rows], expected, atol=1e-4)


def test_the_default_recipe_is_the_released_test_size(synth_root, tmp_path):
    """At 288x144, through the library (four images keep the full-size forward short)."""
    obj = released_checkpoint("otla")
    source, out = tmp_path / "otla_best.t", tmp_path / "otla.pt"
    torch.save(obj, source)
    convert_file(source, "otla", out, provenance={})
    root = synth_root["sysu"]
    samples = [s for s in load_split("sysu", root, "test") if s.modality == 1][:2]
    samples += [s for s in load_split("sysu", root, "test") if s.modality == 0][:2]
    feats = extract(build_model(out), samples, image_root("sysu", root), torch.device("cpu"))["features"]
    images = _load_images(image_root("sysu", root), [s.path for s in samples], 288, 144)
    with torch.no_grad():
        expected = released_test_features("otla", obj["main_net"], images, infrared=False).numpy()
    np.testing.assert_allclose(feats, expected, atol=1e-4)  # one shared stream: the modality does not matter


def test_no_flip_overrides_the_recipe(four_images, tmp_path):
    source, out = tmp_path / "model_0.pth", tmp_path / "wsl.pt"
    torch.save(released_checkpoint("wsl"), source)
    convert_file(source, "wsl", out, provenance={})
    args = ["--dataset", "manifest", "--root", four_images, "--checkpoint", out, "--height", "64", "--width", "32"]
    flipped, plain = tmp_path / "a.h5", tmp_path / "b.h5"
    assert run_cli("extract-features", *args, "-o", flipped).returncode == 0
    assert run_cli("extract-features", *args, "--no-flip", "-o", plain).returncode == 0
    a, b = read_features(flipped), read_features(plain)
    assert a.attrs["provenance"]["config"]["flip"] == "mean"
    assert b.attrs["provenance"]["config"]["flip"] == "none"
    assert not np.allclose(a.features, b.features, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(b.features, axis=1), 1.0, atol=1e-5)  # still L2, as released


def test_wrong_format_and_damaged_files_are_one_line(tmp_path):
    source, out = tmp_path / "sysu_best.t", tmp_path / "x.pt"
    obj = released_checkpoint("agw")
    torch.save(obj, source)
    one_line_error(run_cli("convert", source, "--from", "otla", "-o", out), "looks like a agw", "--from agw")
    del obj["net"]["base_resnet.base.layer3.2.conv2.weight"]
    obj["net"]["NL_2.0.theta.weight"] = torch.zeros(1, 7, 1, 1)
    obj["net"]["NL_4.0.theta.weight"] = torch.zeros(1, 7, 1, 1)
    with pytest.raises(VitoolError, match="unexpected keys NL_4.0.theta.weight.*missing keys for base_resnet.base"):
        convert_state("agw", obj, source)
    del obj["net"]["NL_4.0.theta.weight"]
    with pytest.raises(VitoolError, match=r"mis-shaped NL_2.0.theta.weight \(1, 7, 1, 1\)"):
        convert_state("agw", obj, source)
    torch.save({"weights": {}}, source)
    with pytest.raises(VitoolError, match="matches none of the released layouts"):
        convert_file(source, "auto", out, {})
    assert not out.exists()


def test_convert_refuses_code_and_never_overwrites(tmp_path):
    source, out, marker = tmp_path / "model_best.pth.tar", tmp_path / "x.pt", tmp_path / "ran"
    obj = released_checkpoint("pclhd")
    torch.save(obj, source)
    out.write_text("mine")
    one_line_error(run_cli("convert", source, "-o", out), "already exists")
    assert out.read_text() == "mine"
    obj["best_mAP"] = Payload(marker)
    torch.save(obj, source)
    one_line_error(run_cli("convert", source, "-o", tmp_path / "y.pt"), "posix.system")
    assert not marker.exists() and not (tmp_path / "y.pt").exists()


# ------------------------------------------------------------------------------------------------ ONNX export


def test_export_runs_in_onnxruntime_with_the_extracted_features(four_images, tmp_path):
    """A two-stream network with a flip-and-L2 recipe (WSL's): onnxruntime's embedding of both modalities
    equals extract-features' features, at a batch size other than the one exported with."""
    ort = pytest.importorskip("onnxruntime")
    source, ckpt, onnx_file = tmp_path / "model_0.pth", tmp_path / "wsl.pt", tmp_path / "wsl.onnx"
    torch.save(released_checkpoint("wsl"), source)
    convert_file(source, "wsl", ckpt, provenance={})
    model = build_model(ckpt, height=64, width=32)
    torch.save({**torch.load(ckpt, weights_only=True), "model_config": model.config.to_dict()}, ckpt)
    result = run_cli("export", ckpt, "-o", onnx_file, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["inputs"] == ["images", "modality"] and report["max_abs_difference"] < 1e-4

    samples = load_split("manifest", four_images, "test")[::-1][:3]  # infrared first, both modalities, 3 rows
    expected = extract(model, samples, four_images.parent, torch.device("cpu"))["features"]
    images = _load_images(four_images.parent, [s.path for s in samples], 64, 32).numpy()
    modality = np.array([s.modality for s in samples], dtype=np.int64)
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(["embedding"], {"images": images, "modality": modality})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    made = json.loads(session.get_modelmeta().custom_metadata_map["vitool_provenance"])
    assert made["checkpoint_sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest() and made["config"]["opset"] == 17
    assert "already exists" in run_cli("export", ckpt, "-o", onnx_file).stderr


def test_export_without_the_extra_is_one_line(tmp_path):
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32), pretrained="none"))
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "onnxruntime.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "vitool", "export", str(ckpt), "-o", str(tmp_path / "m.onnx")],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    one_line_error(result, "needs the 'onnxruntime' package", "pip install 'vitool[export]'")
    assert not (tmp_path / "m.onnx").exists()

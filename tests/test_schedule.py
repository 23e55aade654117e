"""Matched learning-rate schedules: a method and its baseline decay at the same places of each stage."""

import copy
import math
from pathlib import Path

import pytest
import torch

from vitool.data.datasets import load_split
from vitool.engine.config import load_config
from vitool.errors import VitoolError
from vitool.methods.registry import build_method

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def multipliers(config_file, synth_root, **overrides):
    cfg = load_config(CONFIGS / config_file, {"root": str(synth_root["sysu"]), **overrides})
    method = build_method(cfg, load_split("sysu", cfg.root, "train", 1))
    stages = cfg.stages(method.schedule_restart())
    factor = cfg.warmup_from(method.warmup_factor)
    return [round(cfg.lr_at(e, stages, factor) / cfg.lr, 6) for e in range(cfg.epochs)], stages


def test_unsupervised_demo_methods_share_the_baselines_schedule(synth_root):
    stage = [0.5, 1, 1, 1, 1, 1, 0.1, 0.1]  # warm-up 2 and a step at 3/4 of each 8-epoch stage
    for method in ("dcl", "pclhd", "mult"):
        assert multipliers("demo-unsupervised.toml", synth_root, method=method) == (stage + stage, [8]), method


def test_mult_in_its_own_schedule_and_its_baseline_match(synth_root):
    """MULT's released schedule is one over the run, its cross stage at a tenth of stage one's rate:
    configs/demo-mult.toml sets it for MULT and DCL alike, on top of its base demo-unsupervised.toml."""
    expected = ([0.5, *[1] * 7, *[0.1] * 8], [])
    for method in ("dcl", "mult"):
        assert multipliers("demo-mult.toml", synth_root, method=method) == expected, method
    assert multipliers("demo-mult.toml", synth_root)[0] == expected[0]  # the file's own method, mult


def test_experts_and_hel_only_share_the_stages(synth_root):
    experts = multipliers("demo.toml", synth_root, method="experts")
    hel_only = multipliers("demo.toml", synth_root, method="experts", experts_stage1_epochs=16, schedule_stages=[4])
    # the released warm-up climbs linearly from 0.01 in each stage: 0.01 + 0.99 e / 2 over 2 warm-up epochs
    stage2 = [0.01, 0.505, 1, 1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.1]  # 12 epochs: the step at 9
    assert experts == hel_only == ([0.01, 0.505, 1, 0.1, *stage2], [4])
    # without the explicit stages HEL only would run one schedule: the confound this key removes
    assert multipliers("demo.toml", synth_root, method="experts", experts_stage1_epochs=16)[1] == []


def test_single_stage_demo_keeps_its_schedule(synth_root):
    for method in ("otla", "visible", "supervised"):  # milestones [0.75] of 16 epochs: a step at 12
        assert multipliers("demo.toml", synth_root, method=method) == ([0.5, *[1] * 11, *[0.1] * 4], [])


def test_gpu_recipes_keep_the_released_schedules(synth_root):
    pclhd, stages = multipliers("pclhd.toml", synth_root, method="dcl")  # the baseline restarts with PCLHD
    assert stages == [50] and pclhd[19:22] == [1, 0.1, 0.1] and pclhd[49:52] == [0.01, 1, 1] and pclhd[-1] == 0.01
    mult, stages = multipliers("mult.toml", synth_root, method="mult")
    assert stages == [] and mult[39:41] == [0.1, 0.1] and mult[-1] == pytest.approx(0.001)


def test_bad_schedule_values_are_refused():
    for key, value in (("milestones", [0]), ("schedule_stages", [0, 4])):
        with pytest.raises(VitoolError, match=key):
            load_config(None, {key: value})


# ------------------------------------------------------------------ settings papers give in iterations


def _method_and_net(method_name, synth_root, **overrides):
    from vitool.models.network import ModelConfig, VIReIDNet

    cfg = load_config(
        CONFIGS / "demo-unsupervised.toml",
        {"root": str(synth_root["sysu"]), "method": method_name, "pretrained": "none", **overrides},
    )
    method = build_method(cfg, load_split("sysu", cfg.root, "train", 1))
    model_config = ModelConfig.cpu_default("mobilenet_v2")
    method.adjust_model(model_config)
    model_config.height, model_config.width, model_config.num_classes = 64, 32, method.num_classes()
    torch.manual_seed(0)
    return method, method.train_module(VIReIDNet(model_config, pretrained="none"))


def test_grl_ramp_takes_the_same_share_of_any_run(synth_root):
    from vitool.methods.contract import RunPlan

    method, net = _method_and_net("otla", synth_root)
    method.plan(RunPlan(epochs=8, steps_per_epoch=30))  # the CPU demo: 240 steps
    assert net.max_iter == pytest.approx(0.177 * 240)
    for share, expected in ((0.0, 0.0), (0.177 / 2, 2 / (1 + math.exp(-5)) - 1), (0.177, 2 / (1 + math.exp(-10)) - 1)):
        net.steps = round(share * 240)
        assert net.coefficient() == pytest.approx(expected, abs=0.01)  # rounded steps
    assert method.report().settings["grl_max_iter"] == pytest.approx(42.5, abs=0.05)
    method.plan(RunPlan(epochs=81, steps_per_epoch=696))  # the released SYSU-MM01 run: the paper's 10,000
    assert net.max_iter == pytest.approx(10_000, rel=0.003)
    literal, net = _method_and_net("otla", synth_root, grl_ramp=0.0, grl_step=5)
    literal.plan(RunPlan(epochs=8, steps_per_epoch=30))
    assert (net.max_iter, net.grl_step) == (10_000, 5)


def test_momentum_encoder_half_life_is_a_share_of_stage_two(synth_root):
    from vitool.methods.contract import RunPlan
    from vitool.methods.pclhd import ema_beta

    released, _ = _method_and_net("pclhd", synth_root, dcl_epochs=50)
    released.plan(RunPlan(epochs=100, steps_per_epoch=200))  # the released 50 + 50 epochs x 200 steps
    assert released.beta == pytest.approx(0.999, abs=2e-6)
    method, _ = _method_and_net("pclhd", synth_root, dcl_epochs=4)  # dcl_epochs 4 of 8
    method.plan(RunPlan(epochs=8, steps_per_epoch=30))  # stage 2: 120 steps
    assert method.beta == pytest.approx(ema_beta(0.0693 * 120)) and method.beta == pytest.approx(0.920, abs=1e-3)
    assert method.beta**120 < 1e-4  # the online weights are absorbed over stage 2, as over the released one
    literal, _ = _method_and_net("pclhd", synth_root, pclhd_ema_half_life=0.0)
    literal.plan(RunPlan(epochs=8, steps_per_epoch=30))
    assert literal.beta == 0.999


def test_momentum_encoder_keeps_its_own_bn_statistics(synth_root):
    from vitool.methods.contract import RunPlan

    method, net = _method_and_net("pclhd", synth_root)
    method.plan(RunPlan(epochs=8, steps_per_epoch=30))
    net.stage2 = method.stage2 = True
    with torch.no_grad():  # the momentum encoder's weights drift from the online model's, as in stage 2
        for p in net.ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    images, modality = torch.randn(8, 3, 64, 32), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    expected = copy.deepcopy(net.ema).train()
    with torch.no_grad():
        expected(images, modality)  # its own train-mode pass over the batch
    ema_params_before = {k: v.clone() for k, v in net.ema.named_parameters()}
    net.train()
    net(images, modality)
    method.after_step()
    online = dict(net.model.named_buffers())
    own = dict(expected.named_buffers())
    moved = [k for k, b in net.ema.named_buffers() if k.endswith("running_mean")]
    assert moved
    for name in moved:
        buffer = dict(net.ema.named_buffers())[name]
        torch.testing.assert_close(buffer, own[name])  # its own statistics ...
        assert not torch.allclose(buffer, online[name])  # ... not the online model's
    for name, p in net.ema.named_parameters():  # eq. 16 on the parameters
        expected_p = (
            method.beta * ema_params_before[name] + (1 - method.beta) * dict(net.model.named_parameters())[name]
        )
        torch.testing.assert_close(p, expected_p)


def test_config_defaults_are_the_shares_derived_from_the_released_runs():
    from vitool.methods.otla import GRL_RAMP, OTLAOptions
    from vitool.methods.pclhd import EMA_HALF_LIFE, PCLHDOptions

    assert (OTLAOptions().grl_ramp, PCLHDOptions().pclhd_ema_half_life) == (GRL_RAMP, EMA_HALF_LIFE) == (0.177, 0.0693)


def test_the_experts_warm_up_is_the_released_one_and_others_keep_agws(synth_root):
    """The released experts' warm-up multipliers over 10 epochs are 0.01, 0.109, ..., 0.901 (linear from 0.01),
    in each stage; AGW's (and every other method's) are 0.1, 0.2, ..., 1.0."""
    experts, stages = multipliers("experts.toml", synth_root)
    released = [round(0.01 + 0.99 * e / 10, 6) for e in range(10)]
    assert released[:3] == [0.01, 0.109, 0.208] and released[-1] == 0.901
    assert stages == [20] and experts[:10] == released and experts[20:30] == released and experts[10] == 1
    agw, _ = multipliers("agw.toml", synth_root)
    assert agw[:10] == [round(0.1 * (e + 1), 6) for e in range(10)]
    assert multipliers("experts.toml", synth_root, warmup_factor=0)[0][:2] == [0.1, 0.2]  # AGW's, asked for
    with pytest.raises(VitoolError, match="warmup_factor = 2"):
        load_config(None, {"warmup_factor": 2})

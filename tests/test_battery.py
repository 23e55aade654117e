"""check_method: every registered method passes the battery, the example plugin's included, and each
check fails on a method that breaks what it checks."""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from vitool import MethodCheckError, check_method
from vitool.methods import registry
from vitool.methods.contract import EpochLabels, EpochReport
from vitool.methods.supervised import Supervised

PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "examples" / "method-plugin" / "src"


@pytest.fixture(scope="module", autouse=True)
def example_plugin():
    """The example plugin's method, registered as its entry point would register it."""
    added = "heterocenter" not in registry.methods()  # unless installed, and found through its entry point
    sys.path.insert(0, str(PLUGIN_SOURCE))
    try:
        if added:
            import vitool_heterocenter

            vitool_heterocenter.register()
        yield
    finally:
        sys.path.remove(str(PLUGIN_SOURCE))
        if added:
            registry._REGISTRY.pop("heterocenter", None)


@pytest.mark.parametrize("name", sorted({*registry.methods(), "heterocenter"}))
def test_every_method_passes_the_battery(name):
    assert len(check_method(name)) == 5


class FloatLabels(Supervised):
    def epoch_labels(self, context, epoch):
        return EpochLabels(super().epoch_labels(context, epoch).labels.astype(np.float32))


class NoGradient(Supervised):
    def loss(self, out, labels, modality, rows):
        total, terms = super().loss(out, labels, modality, rows)
        return total * 0.0, terms


class ForgetsOnResume(Supervised):
    """Its loss grows with the epochs it has seen, a count its state does not keep."""

    seen = 0

    def epoch_labels(self, context, epoch):
        self.seen += 1
        return super().epoch_labels(context, epoch)

    def loss(self, out, labels, modality, rows):
        total, terms = super().loss(out, labels, modality, rows)
        return total * self.seen, terms


class ClashingReport(Supervised):
    def report(self):
        return EpochReport(quality={"loss": 0.5})


class NaNLoss(Supervised):
    def loss(self, out, labels, modality, rows):
        total, terms = super().loss(out, labels, modality, rows)
        return total * float("nan"), terms


class TensorReport(Supervised):
    def report(self):
        return EpochReport(quality={"accuracy": torch.tensor(0.5)})


class ObjectState(Supervised):
    def state_dict(self):
        return {"sampler": Fraction(1, 3)}  # pickled by torch.save, refused by weights_only=True


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (FloatLabels, re.escape("dtype float32, not an integer type")),
        (TensorReport, re.escape("report().quality['accuracy'] = Tensor, not a number")),
        (ClashingReport, re.escape("report() names 'loss' twice, or as a field the engine logs itself")),
        (NaNLoss, "two epochs of training failed: .*nan"),
        (NoGradient, re.escape("never reaches the backbone")),
        (ObjectState, re.escape("state_dict() holds what weights_only=True refuses")),
        (ForgetsOnResume, re.escape("model weights after a resume")),
    ],
)
def test_each_check_fails_on_a_method_that_breaks_it(monkeypatch, broken, message):
    def build(config, samples):
        return broken(np.array([s.pid for s in samples]))

    monkeypatch.setitem(registry._REGISTRY, "broken", registry.MethodSpec("broken", build, "broken on purpose"))
    with pytest.raises(MethodCheckError, match=message):
        check_method("broken")

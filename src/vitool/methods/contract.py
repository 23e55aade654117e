"""The contract between the training engine and a method: what the engine gives a method, and what a
method gives back. The engine imports this module and the registry, never a method; a method imports
this module, never the engine.

An epoch: the engine calls ``epoch_labels(context, epoch)`` and gets :class:`EpochLabels` back, draws
the epoch's batches from them, and per batch calls ``loss`` and, after the optimiser step,
``after_step`` (e.g. a momentum encoder follows the model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np  # the registry imports this module for the CLI's choices, before torch is needed
    import torch
    from torch import nn

    from vitool.data.datasets import Sample
    from vitool.models.network import ModelConfig


@dataclass(frozen=True)
class RunPlan:
    """The run's length, for the settings that papers define in iterations and vitool scales to the run."""

    epochs: int
    steps_per_epoch: int
    stages: tuple[int, ...] = ()  # the epochs that start a new learning-rate schedule


@dataclass(frozen=True)
class RunSetup:
    """What a method reads of the run's configuration: its registered name, the run's seed and the labels
    file it trains from ("" = labels derived from the dataset). Its own keys come as its options."""

    method: str
    seed: int
    labels: str = ""


@dataclass(frozen=True)
class EpochLabels:
    """What an epoch's batches are drawn from: a label per training row (-1 = not used this epoch), and
    whether each modality's labels are a space of its own (weak supervision, per-modality clusters), in
    which case the sampler draws the identities of the two halves of a batch separately. With ``second``,
    a second label per row (another label space, e.g. MULT's infrared one), each batch draws half its
    identities from ``labels`` and half from ``second``; the loss then reads its targets by row."""

    labels: np.ndarray
    independent: bool = False
    second: np.ndarray | None = None


@dataclass
class EpochReport:
    """A method's facts about an epoch, by kind, so that no reader guesses from a name: ``quality`` (rates
    of its labels against the hidden truth: plotted on curves.png and summarised by ``vitool compare``),
    ``counts`` (clusters, pairs, outlier shares: summarised, not plotted), ``settings`` (effective
    settings and bookkeeping: logged only). ``|`` merges two, the right one winning a name."""

    quality: dict[str, float] = field(default_factory=dict)
    counts: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __or__(self, other: EpochReport) -> EpochReport:
        return EpochReport(
            {**self.quality, **other.quality}, {**self.counts, **other.counts}, {**self.settings, **other.settings}
        )

    def flat(self) -> dict[str, Any]:
        """Every figure under its own name, as one log.jsonl record holds them."""
        return {**self.settings, **self.counts, **self.quality}

    def state(self) -> dict[str, dict[str, Any]]:
        return {"quality": dict(self.quality), "counts": dict(self.counts), "settings": dict(self.settings)}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> EpochReport:
        """From ``state()``."""
        return cls(**{k: dict(v) for k, v in (state or {}).items()})


@dataclass
class TrainingContext:
    """What a method may use from the run, instead of the engine itself.

    ``extract(samples, model=None, attrs=None)`` returns the eval-mode features of ``samples`` as a
    FeatureSet (``model``: another network than the one trained, e.g. a momentum encoder).
    """

    samples: list[Sample]  # the training rows, visible first
    root: Path  # the folder the samples' paths are relative to
    run_dir: Path
    seed: int
    rank: int
    extract: Callable[..., Any]

    @property
    def is_main(self) -> bool:
        """Process 0 of a distributed run (or the only process): the one that clusters and writes."""
        return self.rank == 0


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch of a run: its sampler, augmentation and any draw a method makes, so that a
    resumed run draws what an uninterrupted one would."""
    return seed * 100_003 + epoch


def check_options(options: Any, rules: dict[str, tuple[bool, str]]) -> None:
    """Validate a method's options dataclass: ``rules`` maps a key to (is its value valid, what is valid).
    The ValueError names the key, its value and the fix; vitool shows it as one line."""
    for key, (valid, rule) in rules.items():
        if not valid:
            raise ValueError(f"{key} = {getattr(options, key)!r}: use {rule}")


class Method:
    """The interface the engine drives. Subclasses set the class attributes and implement ``num_classes``,
    ``epoch_labels`` and ``loss``; the other hooks are optional."""

    name = "base"
    batch_shape = (8, 4)  # identities per batch, images per identity and modality (AGW)
    visible_grayscale = 0.0  # chance a visible training image is turned gray (OTLA 0.5)
    visible_channel_exchange = 0.0  # chance it becomes one random colour channel, thrice (ADCA)
    # the released pipeline's other settings (engine/config.py says what each means): AGW's by default
    erasing_style = "torchvision"
    infrared_channel_gray = 0.0
    sampler_replacement = 1
    sampler_style = "identity"
    test_flip = "none"
    strong_augmentation_epochs = 0  # epochs at the start with MULT's stage-one augmentation
    bnneck_at_backbone_rate = False  # the BNNeck in the backbone's parameter group (the experts' released groups)
    warmup_factor = 0.0  # the warm-up's first multiplier when linear (experts 0.01); 0: AGW's (e + 1) / warm-up
    # the method's options dataclass as it runs, stand-ins such as "-1: the paper's" resolved: the engine
    # records it in the run's config.toml (None: a method without options)
    options: Any = None

    def num_classes(self) -> int:
        raise NotImplementedError

    def adjust_model(self, model_config: ModelConfig) -> None:
        """Change the network's ModelConfig before it is built (e.g. one shared stem)."""

    def train_module(self, model: nn.Module) -> nn.Module:
        """The module the loop calls: the model, or the model wrapped with the method's extra heads."""
        return model

    def held_parameters(self) -> tuple[list[nn.Parameter], int]:
        """Parameters kept at their initial values (learning rate 0) before an epoch, as a released optimiser
        that receives them only at a later stage does: (parameters, first epoch they train); none by default."""
        return [], 0

    def plan(self, plan: RunPlan) -> None:
        """Learn the run's length before the first epoch (e.g. to scale a ramp defined in iterations)."""

    def schedule_restart(self) -> int | None:
        """The epoch at which the method's released code restarts the learning-rate schedule and the
        optimiser (a second stage), if any: the engine's schedule stage when ``schedule_stages = [-1]``."""
        return None

    def epoch_labels(self, context: TrainingContext, epoch: int) -> EpochLabels:
        """Labels of every training row for this epoch's batches (a relabelling hook may run here)."""
        raise NotImplementedError

    def loss(
        self, out: dict[str, torch.Tensor], labels: torch.Tensor, modality: torch.Tensor, rows: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's loss and its logged terms; ``rows`` are the images' training-row indices."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Runs after every optimiser step (e.g. a momentum encoder follows the model)."""

    def adopt_labels(self, plan: EpochLabels) -> None:
        """In a distributed run every process takes process 0's labels for the epoch."""

    def report(self) -> EpochReport:
        """Facts about this epoch's labels for the log, by kind (e.g. pseudo-label accuracy against the
        ground truth is ``quality``). A plain dict (the earlier contract) is sorted by its names' endings."""
        return EpochReport()

    def start_from(self, saved: dict[str, Any]) -> list[str]:
        """``init``: take from a fitted run's saved method state (its ``state_dict()``) what this method's heads
        can use where names and shapes agree (extra classifiers, a discriminator). Memories, banks and labels
        are rebuilt from the loaded network. Returns the names taken; none by default."""
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

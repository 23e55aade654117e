"""The training loop shared by every method: data, optimiser and schedule, AMP, logging, checkpoints,
validation and the final test evaluation. A method (vitool.methods) supplies labels and losses.

Multi-GPU: started by ``torchrun --nproc_per_node N -m vitool train ...`` the engine joins the process
group (NCCL on GPUs, gloo on CPUs), wraps the model in DistributedDataParallel and gives each process
every N-th image of each batch; process 0 validates, logs, writes checkpoints and tests.

Reproducibility: every epoch reseeds Python, numpy and torch from (seed, epoch) and builds its sampler
and DataLoader generator from the same pair, so a run resumed from ``last.pt`` (written atomically at
the end of every epoch) draws exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitool.data.datasets import Sample, image_root, load_split, split_attrs
from vitool.data.images import ImageDataset
from vitool.data.samplers import CrossModalIdentitySampler
from vitool.data.transforms import mult_stage_one, train_transform
from vitool.distributed import RankSlice, broadcast_from_main
from vitool.engine.config import TrainConfig, dump_config
from vitool.engine.report import board_scalars, board_writer, epoch_line, epoch_report, plot_curves
from vitool.engine.run_folder import RUN_PLACE
from vitool.errors import VitoolError
from vitool.io import atomic_output, make_provenance, output_error
from vitool.methods.contract import EpochLabels, Method, RunPlan, TrainingContext, epoch_seed
from vitool.methods.registry import build_method
from vitool.modality import INFRARED, VISIBLE
from vitool.models.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint, start_from
from vitool.models.network import ModelConfig, VIReIDNet
from vitool.models.weights import weights_source


class TrainSet(ImageDataset):
    """Training images with the label the method assigns this epoch; visible rows may have their own
    transform (OTLA's random grayscale, ADCA's channel exchange)."""

    def __init__(self, samples: list[Sample], root: Path, transform, cache=None, visible_transform=None) -> None:
        super().__init__(samples, root, transform, cache)
        self.visible_transform = visible_transform
        self.labels = np.full(len(samples), -1, dtype=np.int64)

    def __getitem__(self, i: int):
        modality = self.samples[i].modality
        transform = self.visible_transform if modality == VISIBLE and self.visible_transform else self.transform
        return self.image(i, transform), modality, int(self.labels[i]), i


def _init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun (which sets TORCHELASTIC_RUN_ID),
    also with one process, so `torchrun --nproc_per_node 1` runs the DDP path on a single GPU."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        # process 0 clusters and associates while the others wait: SYSU-size DBSCAN takes minutes, beyond
        # NCCL's default 10-minute timeout
        kwargs: dict[str, Any] = {"timeout": datetime.timedelta(minutes=DISTRIBUTED_TIMEOUT_MINUTES)}
        if device.type == "cuda":
            kwargs["device_id"] = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **kwargs)
    return dist.get_rank(), dist.get_world_size()


# keys whose stand-in (-1, or "" for a name) means the method's own value, a class attribute of the Method
METHOD_DEFAULTED = (
    "visible_grayscale",
    "visible_channel_exchange",
    "erasing_style",
    "infrared_channel_gray",
    "sampler_replacement",
    "sampler_style",
    "test_flip",
    "strong_augmentation_epochs",
)


def resolved_config(config: TrainConfig, method: Method, model: ModelConfig, samples: list[Sample]) -> TrainConfig:
    """``config`` with every "the method's" or "the backbone's" stand-in (0 or -1) replaced by the value
    the run uses, so that config.toml, checkpoints and provenance say what ran. Where the run computes
    (device, amp, workers) stays as given: a resume decides that on the machine it runs on."""
    ids, images = method.batch_shape
    ids, images = config.ids_per_batch or ids, config.images_per_id or images
    visible = sum(s.modality == VISIBLE for s in samples)
    restart = method.schedule_restart()
    stages = ([restart] if restart is not None else []) if config.schedule_stages == [-1] else config.schedule_stages
    options = method.options
    return replace(
        config,
        height=config.height or model.height,
        width=config.width or model.width,
        ids_per_batch=ids,
        images_per_id=images,
        batches_per_epoch=CrossModalIdentitySampler.epoch_length(
            visible, len(samples) - visible, ids, images, config.batches_per_epoch or None
        ),
        **{k: getattr(method, k) for k in METHOD_DEFAULTED if getattr(config, k) in (-1, "")},
        warmup_factor=config.warmup_from(method.warmup_factor),
        schedule_stages=stages,
        method_options=asdict(options) if is_dataclass(options) else config.method_options,
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def split_validation(samples: list[Sample], val_ids: int, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold ``val_ids`` training identities out (chosen by seed) to pick best.pt; never the test set."""
    if val_ids <= 0:
        return samples, []
    ids = sorted({s.pid for s in samples})
    held = set(np.random.default_rng(seed).choice(ids, min(val_ids, len(ids) - 2), replace=False).tolist())
    return [s for s in samples if s.pid not in held], [s for s in samples if s.pid in held]


DISTRIBUTED_TIMEOUT_MINUTES = 60
RANK_SEED = 7_919  # process r of a distributed run draws its augmentation from seed + r x this (r = 0: the seed)


class Engine:
    def __init__(self, config: TrainConfig, run_dir: Path, log: Callable[[str], None] = print) -> None:
        from vitool.devices import resolve_device

        self.config, self.run_dir, self.log = config, Path(run_dir), log
        if config.tensorboard:
            board_writer()
        self.device = resolve_device(config.device)
        self.rank, self.world = _init_distributed(self.device)
        self.distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if self.device.type == "cuda" and self.distributed:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        self.workers = config.workers
        if self.workers < 0:  # the GPU should not wait on decoding; the CPU demo stays single-process
            self.workers = min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        self.root = image_root(config.dataset, config.root)
        samples = load_split(config.dataset, config.root, "train", config.trial)
        # visible rows first, then infrared, as the sampler expects
        samples = sorted(samples, key=lambda s: s.modality)
        self.train_samples, self.val_samples = split_validation(samples, config.val_ids, config.seed)
        if not any(s.modality == INFRARED for s in self.train_samples):
            raise VitoolError(
                config.root, "has no infrared training images", "check the dataset layout (vitool check-dataset)"
            )
        self.method: Method = build_method(config, self.train_samples)
        model_config = ModelConfig.cpu_default(config.backbone)
        self.method.adjust_model(model_config)
        model_config.num_classes = self.method.num_classes()
        self.config = config = resolved_config(config, self.method, model_config, self.train_samples)
        model_config.height, model_config.width = config.height, config.width
        model_config.test_flip, model_config.test_l2 = config.test_flip, config.test_flip != "none"
        self.stages = config.stages()  # epochs that start a new lr schedule
        # recorded (V1 and V2 train differently); looked up before the seed, as it may build a network
        self.weights = weights_source(config.backbone, config.pretrained)
        torch.manual_seed(config.seed)
        self.model = VIReIDNet(model_config, pretrained=config.pretrained)
        self.init_heads: list[str] = []  # the method heads taken from the init checkpoint
        self.init_file, init_state = start_from(self.model, config.init) if config.init else (None, None)
        self.model = self.model.to(self.device)
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.module = self.method.train_module(self.model).to(self.device)  # the model and any method heads
        self.module = self.module.to(memory_format=self.memory_format)
        if init_state is not None:
            self.init_heads = self.method.start_from(init_state.get("method") or {})
        self.optimizer = self.build_optimizer()
        self.train_model = self.module
        if self.distributed:  # gradients are averaged over the processes; BN statistics stay per process
            from torch.nn.parallel import DistributedDataParallel

            # device_ids None: DDP leaves the inputs where they are, so the modality stays on the host (below)
            self.train_model = DistributedDataParallel(self.module, device_ids=None)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.cache = None
        if config.image_cache:
            from vitool.data.cache import ImageCache

            self.cache = ImageCache(config.image_cache, self.model.config.height, self.model.config.width)
        self.start_epoch = self.current_epoch = 0
        self.best_rank1 = -1.0
        self.board = None  # TensorBoard's writer, with tensorboard = true
        size, erasing, style = (config.height, config.width), config.erasing, config.erasing_style
        infrared = train_transform(*size, erasing, erasing_style=style, channel_gray=config.infrared_channel_gray)
        visible = train_transform(*size, erasing, config.visible_grayscale, config.visible_channel_exchange, style)
        # (infrared, visible) transforms: the run's, and MULT's stronger stage one for its first epochs
        self.augmentations = {False: (infrared, visible), True: mult_stage_one(*size, style)[::-1]}
        # the training images; build_loader gives each epoch its labels and transforms
        self.train_set = TrainSet(self.train_samples, self.root, infrared, self.cache, visible)
        self.train_modality = np.array([s.modality for s in self.train_samples])
        self.train_cameras = np.array([s.cam for s in self.train_samples])
        self.context = TrainingContext(
            self.train_samples,
            self.root,
            self.run_dir,
            config.seed,
            self.rank,
            partial(self.features, shard=True, raw=True),
        )

    # ------------------------------------------------------------------------------------ builders

    def build_optimizer(self) -> torch.optim.Optimizer:
        """Two parameter groups: the backbone at lr x backbone_lr_factor, the heads (BNNeck unless the method
        puts it with the backbone, classifier and any method heads) at lr, and a third for what the method
        holds at its initial values until an epoch. A subclass may return another optimiser; each group
        keeps an ``lr_factor``, which the schedule multiplies."""
        config = self.config
        head_modules = (self.model.classifier,) + (() if self.method.bnneck_at_backbone_rate else (self.model.bnneck,))
        heads = {id(p) for m in head_modules if m is not None for p in m.parameters()}
        held, held_until = self.method.held_parameters()
        held_ids = {id(p) for p in held}
        backbone = [p for p in self.model.parameters() if id(p) not in heads and id(p) not in held_ids]
        taken = {id(p) for p in backbone} | held_ids
        rest = [p for p in self.module.parameters() if id(p) not in taken and p.requires_grad]
        groups = [{"params": backbone, "lr_factor": config.backbone_lr_factor}, {"params": rest, "lr_factor": 1.0}]
        if held:  # at learning rate 0 until held_until, then a head (see _train_epoch)
            groups.append({"params": held, "lr_factor": 1.0, "held_until": held_until})
        if config.optimizer == "adam":
            return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
        if config.optimizer == "sgd":
            return torch.optim.SGD(
                groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, nesterov=True
            )
        raise VitoolError(None, f"optimizer = {config.optimizer!r}", "use sgd or adam")

    def build_loader(self, epoch: int, plan: EpochLabels) -> torch.utils.data.DataLoader:
        """This epoch's batches: identities drawn from ``plan``'s labels (both modalities in every batch),
        seeded by the epoch so that a resumed run draws what an uninterrupted one would."""
        cfg, modality = self.config, self.train_modality
        self.train_set.labels = plan.labels
        strong = epoch < cfg.strong_augmentation_epochs
        self.train_set.transform, self.train_set.visible_transform = self.augmentations[strong]
        sampler = CrossModalIdentitySampler(
            plan.labels[modality == VISIBLE],
            plan.labels[modality == INFRARED],
            int((modality == VISIBLE).sum()),
            cfg.ids_per_batch,
            cfg.images_per_id,
            seed=epoch_seed(cfg.seed, epoch),
            batches=cfg.batches_per_epoch,
            independent=plan.independent,
            replacement=bool(cfg.sampler_replacement),
            cameras=self.train_cameras if cfg.sampler_style == "gallery" else None,
            second=None
            if plan.second is None
            else (plan.second[modality == VISIBLE], plan.second[modality == INFRARED]),
        )
        return torch.utils.data.DataLoader(
            self.train_set,
            batch_sampler=RankSlice(sampler, self.rank, self.world),
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch) + RANK_SEED * self.rank),
        )

    def _amp_dtype(self) -> torch.dtype | None:
        amp = self.config.amp
        if amp == "auto":
            return torch.float16 if self.device.type == "cuda" else None
        dtypes = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}
        if amp not in dtypes:
            raise VitoolError(None, f"amp '{amp}'", "use auto, none, fp16 or bf16")
        return dtypes[amp]

    # ---------------------------------------------------------------------------------------- state

    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "config": self.config.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "method": self.method.state_dict(),
            "best_rank1": self.best_rank1,
        }

    def resume(self, checkpoint: Path) -> None:
        state = load_checkpoint(checkpoint, keys=(*REQUIRED_KEYS, "epoch", "optimizer", "scaler", "method"))
        try:
            self.model.load_state_dict(state["model_state"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state["scaler"] and self.scaler.is_enabled():  # a run saved without fp16 scaling starts its scale
                self.scaler.load_state_dict(state["scaler"])
            self.method.load_state_dict(state["method"])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise VitoolError(
                checkpoint,
                f"does not fit this run's model ({type(exc).__name__})",
                "resume with the run folder that wrote it",
            ) from None
        self.start_epoch = int(state["epoch"]) + 1
        self.best_rank1 = state.get("best_rank1", -1.0)
        saved = state.get("config", {})
        where = {k: getattr(self.config, k) for k in RUN_PLACE}
        moved = {k: (saved[k], v) for k, v in where.items() if k in saved and saved[k] != v}
        note = "; ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in moved.items())
        self.log(
            f"resuming at epoch {self.start_epoch + 1}/{self.config.epochs} on {self.device} "
            f"(amp {self.amp_dtype or 'none'}, workers {self.workers})"
            + (f"; changed since it was saved: {note}" if note else "")
        )

    # ----------------------------------------------------------------------------------------- loop

    def run(self, progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
        cfg, main = self.config, self.rank == 0
        self.method.plan(RunPlan(cfg.epochs, cfg.batches_per_epoch, tuple(self.stages)))
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.run_dir / "config.toml", overwrite=True) as tmp:  # a resume writes it anew
                tmp.write_text(dump_config(cfg))
        self.board = board_writer()(str(self.run_dir / "tensorboard")) if cfg.tensorboard and main else None
        for epoch in range(self.start_epoch, cfg.epochs):
            self.current_epoch = epoch
            if epoch in self.stages and cfg.stage_start == "best":
                self.start_stage_from_best(epoch)
            seed_everything(epoch_seed(cfg.seed, epoch))
            labelled = time.perf_counter()
            plan = self.method.epoch_labels(self.context, epoch)  # clustering, association, relabelling
            labels_seconds = time.perf_counter() - labelled
            if self.world > 1:  # every process samples from process 0's labels, with its own augmentation
                plan = broadcast_from_main(plan)
                self.method.adopt_labels(plan)
                seed_everything(epoch_seed(cfg.seed, epoch) + RANK_SEED * self.rank)
            record = self._train_epoch(epoch, self.build_loader(epoch, plan), progress if main else None)
            record["labels_seconds"] = round(labels_seconds, 2)
            if epoch == 0:
                record["pretrained_weights"] = self.weights  # the log says where the run started, as provenance does
                if self.init_file is not None:
                    record["init"] = {"checkpoint": str(self.init_file), "method_heads": self.init_heads}
            record.update(epoch_report(self.method.report()))
            if main:  # one process validates, logs and writes; the others wait at the barrier
                for action in self.epoch_actions:
                    action(epoch, record)
            self._barrier()
        if self.board is not None:
            self.board.close()
        results = None
        if main:  # curves.png, test_features.h5 and results.json share one provenance record
            test_samples = load_split(cfg.dataset, cfg.root, "test", cfg.trial)
            made = self._provenance(test_samples)
            plot_curves(self.run_dir / "log.jsonl", self.run_dir / "curves.png", made)
            results = self.test(test_samples, made)
        self._barrier()
        return results

    # -------------------------------------------------------------------------- end of each epoch

    def start_stage_from_best(self, epoch: int) -> None:
        """A new schedule stage starts from best.pt, the best held-out (val_ids) model so far, not the last
        epoch: its network and the method's state (heads, prototypes) before the method builds the stage's
        labels and memories. Process 0 reads the file; the others take its weights."""
        from vitool.distributed import broadcast_from_main

        self._barrier()  # process 0 wrote best.pt in an earlier epoch
        best = self.run_dir / "best.pt"
        state = None
        if self.rank == 0 and best.is_file():
            saved = load_checkpoint(best)
            state = {"model_state": saved["model_state"], "method": saved.get("method")}
        if self.world > 1:
            state = broadcast_from_main(state)
        if state is None:
            if self.rank == 0:
                self.log(
                    f"epoch {epoch + 1}: no best.pt yet (no held-out epoch scored); the stage starts from the last"
                )
            return
        self.model.load_state_dict(state["model_state"])
        if state["method"] is not None:
            self.method.load_state_dict(state["method"])
        if self.rank == 0:
            self.log(f"epoch {epoch + 1}: the stage starts from best.pt (held-out Rank-1 {self.best_rank1:.1f})")

    @property
    def epoch_actions(self) -> list[Callable[[int, dict[str, Any]], None]]:
        """What process 0 does after each epoch, in order, with the epoch and its record: a subclass adds
        an action by extending this list, without touching the loop."""
        return [self.validate_and_keep_best, self.save_last, self.append_log, self.show_line, self.write_board]

    def validate_and_keep_best(self, epoch: int, record: dict[str, Any]) -> None:
        if self.val_samples and (epoch + 1) % max(self.config.eval_every, 1) == 0:
            record["val"] = self._validate()
            if record["val"]["rank1"] > self.best_rank1:
                self.best_rank1 = record["val"]["rank1"]
                save_checkpoint(self.run_dir / "best.pt", self.model, self.state(epoch))

    def save_last(self, epoch: int, record: dict[str, Any]) -> None:
        save_checkpoint(self.run_dir / "last.pt", self.model, self.state(epoch))

    def append_log(self, epoch: int, record: dict[str, Any]) -> None:
        try:
            with open(self.run_dir / "log.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise output_error(self.run_dir / "log.jsonl", exc) from None

    def show_line(self, epoch: int, record: dict[str, Any]) -> None:
        self.log(epoch_line(record, self.config.epochs))

    def write_board(self, epoch: int, record: dict[str, Any]) -> None:
        if self.board is not None:
            for tag, value in board_scalars(record).items():
                self.board.add_scalar(tag, value, epoch + 1)
            self.board.flush()

    def _barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def _train_epoch(self, epoch: int, loader, progress) -> dict[str, Any]:
        lr = self.config.lr_at(epoch, self.stages, self.config.warmup_factor)
        if epoch in self.stages and self.config.stage_optimizer_restart:
            self.optimizer.state.clear()
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_factor"] if epoch >= group.get("held_until", 0) else 0.0
        self.module.train()
        sums: dict[str, float] = {}
        images, start, waited = 0, time.perf_counter(), 0.0
        batches = iter(loader)
        for step in range(len(loader)):
            asked = time.perf_counter()
            x, modality, labels, rows = next(batches)
            waited += time.perf_counter() - asked  # the loop (and so the GPU's queue) waits on decoding here
            x = x.to(self.device, non_blocking=True, memory_format=self.memory_format)
            # the network routes images by a host copy of the modality (no device sync); the loss reads this one
            host_modality, modality, labels = modality, modality.to(self.device), labels.to(self.device)
            with torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None
            ):
                out = self.train_model(x, host_modality)
            loss, parts = self.method.loss(out, labels, modality, rows)
            if not torch.isfinite(loss):
                raise VitoolError(
                    self.run_dir,
                    f"loss became {loss.item()} in epoch {epoch + 1}",
                    "lower --lr or use --amp none; the previous last.pt is intact",
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.method.after_step()
            for key, value in {"loss": float(loss.detach()), **parts}.items():
                sums[key] = sums.get(key, 0.0) + value
            images += len(x)
            if progress:
                progress(step + 1, len(loader))
        elapsed = time.perf_counter() - start
        steps = max(len(loader), 1)
        return {
            "epoch": epoch + 1,  # people count epochs from 1: the log, the line and the plot alike
            "lr": lr,
            **{k: v / steps for k, v in sums.items()},
            "loss_terms": list(sums),
            "seconds": round(elapsed, 2),
            "images_per_s": round(images / max(elapsed, 1e-9), 1),
            "data_wait_share": round(waited / max(elapsed, 1e-9), 3),
        }

    # ----------------------------------------------------------------------------------- evaluation

    def features(
        self,
        samples: list[Sample],
        attrs: dict[str, Any] | None = None,
        model: torch.nn.Module | None = None,
        shard: bool = False,
        raw: bool = False,
    ):
        """Eval-mode features of ``samples`` by the trained model (or ``model``), with the run's workers and
        autocast dtype. ``shard`` (TrainingContext.extract, which every process calls): in a distributed run
        each process extracts every world-th image and all share the whole result. ``raw`` (TrainingContext
        too): the network's own features (no flip, no L2), which the methods' clustering and association read
        as released; otherwise (validation, the test) the model's test recipe."""
        from vitool.distributed import gather_rows
        from vitool.models.features import extract_featureset

        attrs = {"dataset": "manifest", "split": "train"} if attrs is None else attrs
        net = self.model if model is None else model
        mine = samples[self.rank :: self.world] if shard and self.world > 1 else samples
        if mine is not samples:  # one network for every shard: process 0's BN statistics (its buffers)
            for buffer in net.buffers():
                torch.distributed.broadcast(buffer, src=0)
        fs = extract_featureset(
            net, mine, self.root, attrs, self.device, 128, None, self.workers, cache=self.cache,
            amp=self.amp_dtype, memory_format=self.memory_format, raw=raw,
        )  # fmt: skip
        if mine is not samples:
            for name in ("features", "features_pre_bn", "probs"):
                local = getattr(fs, name)
                if local is not None:
                    # on the run's device: the GPU under NCCL, the CPU under gloo
                    whole = gather_rows(torch.as_tensor(local, device=self.device), len(samples))
                    setattr(fs, name, whole.cpu().numpy())
            for name in ("path", "pid", "cam", "modality"):
                setattr(fs, name, np.asarray([getattr(s, name) for s in samples], dtype=getattr(fs, name).dtype))
        return fs

    def _validate(self) -> dict[str, float]:
        from vitool.evaluation.evaluate import evaluate_features
        from vitool.evaluation.protocols import ProtocolSpec

        fs = self.features(self.val_samples, {"dataset": "manifest", "split": "val"})
        result = evaluate_features(fs, ProtocolSpec("generic"), where="validation identities")
        return {k: result[k] for k in ("rank1", "mAP", "mINP")}

    def _provenance(self, test_samples: list[Sample]) -> dict[str, Any]:
        """What made the run's outputs: the config, seed, and fingerprints of the image copies trained and
        scored on and of the labels file."""
        from vitool.data.datasets import listing_sha256
        from vitool.io import sha256_file

        cfg = self.config
        inputs = {
            "dataset_listing": listing_sha256(test_samples, self.root),
            "train_listing": listing_sha256([*self.train_samples, *self.val_samples], self.root),
        }
        if cfg.labels:
            inputs[cfg.labels] = sha256_file(cfg.labels)
        if self.init_file is not None:  # the checkpoint the network started from
            inputs[str(self.init_file)] = sha256_file(self.init_file)
        provenance = make_provenance(cfg.to_dict(), seed=cfg.seed, inputs=inputs)
        provenance["pretrained_weights"] = self.weights
        return provenance

    def test(self, samples: list[Sample], provenance: dict[str, Any]) -> dict[str, Any]:
        """Scores of the last epoch's model on the test split with the dataset's protocol(s)."""
        from vitool.evaluation.evaluate import SUMMARY_KEYS, evaluate_protocols
        from vitool.evaluation.protocols import PROTOCOL_OF_DATASET, reported_specs
        from vitool.io import write_features

        cfg = self.config
        fs = self.features(samples, split_attrs(cfg.dataset, "test", cfg.trial))
        write_features(self.run_dir / "test_features.h5", fs, provenance, overwrite=True)
        protocol = PROTOCOL_OF_DATASET[cfg.dataset]
        specs = reported_specs(protocol)
        results = {
            name: {k: r[k] for k in SUMMARY_KEYS}
            for name, r in zip(specs, evaluate_protocols(fs, list(specs.values())), strict=True)
        }
        summary = {"protocol": protocol, **results, "provenance": provenance}
        with atomic_output(self.run_dir / "results.json", overwrite=True) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        return results

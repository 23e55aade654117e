"""vitool's Python API: the evaluators, the test sets behind them, the stage files, clustering, association
and released checkpoints, for researchers who keep their own training code (docs/api.md).

Every function here is what a ``vitool`` subcommand runs, so a number computed from Python equals the
one the command line prints. Arrays come in as numpy arrays or torch tensors (CPU or CUDA) and go out as
numpy arrays and plain dataclasses. Bad arguments raise ``ValueError`` (``VitoolError`` is one) with one
line naming the argument and what was expected. Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vitool import _API
from vitool.errors import MethodCheckError  # noqa: F401  (re-exported: what check_method raises)
from vitool.evaluation.protocols import Trial
from vitool.evaluation.rerank import Rerank
from vitool.io import FeatureSet, LabelSet, make_provenance
from vitool.io import read_features as _read_features
from vitool.io import read_labels as _read_labels
from vitool.io import write_features as _write_features
from vitool.io import write_labels as _write_labels
from vitool.stages import convert_checkpoint  # noqa: F401  (re-exported)

__all__ = list(_API)  # the names vitool/__init__.py loads on first use


# ------------------------------------------------------------------------------------------------ arrays


def _array(value: Any, name: str, ndim: int, kind: str, rows: int | None = None) -> np.ndarray:
    """``value`` (numpy, torch on any device, or a list) as a numpy array of ``ndim`` dimensions whose dtype
    kind is in ``kind`` ("f" float, "iu" integer, "b" bool), with ``rows`` rows; else one ValueError line."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, wherever it lives
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim != ndim:
        shape = "[N, D]" if ndim == 2 else "[N]"
        raise ValueError(f"{name}: expected a {ndim}-D array {shape}, got shape {tuple(array.shape)}")
    if array.dtype.kind not in kind and not (kind == "f" and array.dtype.kind in "iu"):
        wanted = {"f": "floats", "iu": "integers"}.get(kind, kind)
        raise ValueError(f"{name}: expected {wanted}, got dtype {array.dtype}")
    if rows is not None and len(array) != rows:
        raise ValueError(f"{name}: expected {rows} rows (one per image), got {len(array)}")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ValueError(f"{name}: holds NaN or infinite values")
    return array


# -------------------------------------------------------------------------------------------------- test sets


@dataclass
class TestSet:
    """The images of a dataset's test split (both modalities), in the order ``vitool extract-features``
    uses: score features computed in this order with :func:`evaluate`."""

    __test__ = False  # not a pytest class

    dataset: str
    root: Path
    path: np.ndarray  # relative to the dataset root
    pid: np.ndarray
    cam: np.ndarray
    modality: np.ndarray  # 0 visible, 1 infrared
    trial: int = 1
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.path)

    def samples(self) -> list:
        """The rows as the loaders' ``Sample`` records."""
        from vitool.data.datasets import Sample

        rows = zip(self.path, self.pid, self.cam, self.modality, strict=True)
        return [Sample(str(p), int(i), int(c), int(m)) for p, i, c, m in rows]

    def image_root(self) -> Path:
        """The folder the paths are relative to (a manifest's own folder)."""
        from vitool.data.datasets import image_root

        return image_root(self.dataset, self.root)

    def images(self, height: int = 288, width: int = 144, transform=None):
        """A torch ``Dataset`` of (image tensor, modality, row) in this order: vitool's test transform
        (resize to ``height`` x ``width``, ImageNet mean and std) unless ``transform`` is given."""
        from vitool.data.images import ImageDataset
        from vitool.data.transforms import test_transform

        return ImageDataset(self.samples(), self.image_root(), transform or test_transform(height, width))

    def features_file(self, features: Any, features_pre_bn: Any = None) -> FeatureSet:
        """A features file's content for ``features`` computed in this order (``write_features`` saves it)."""
        emb = _array(features, "features", 2, "f", len(self)).astype(np.float32)
        pre = None if features_pre_bn is None else _array(features_pre_bn, "features_pre_bn", 2, "f", len(self))
        return FeatureSet(emb, self.path, self.pid, self.cam, self.modality, pre, attrs=self.file_attrs())

    def file_attrs(self) -> dict[str, Any]:
        """The attributes a features file of this test split records (as `vitool extract-features` writes)."""
        from vitool.data.datasets import split_attrs

        return split_attrs(self.dataset, "test", self.trial)


def load_test_set(dataset: str, root: str | Path, trial: int = 1) -> TestSet:
    """The test split of ``dataset`` ("sysu", "regdb", "llcm" or "manifest") at ``root``, in the official
    layout (docs/datasets.md); RegDB's ``trial`` (1..10) picks its own identity split."""
    from vitool.data.datasets import DATASETS, load_split, sample_columns

    if dataset not in DATASETS:
        raise ValueError(f"dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    samples = load_split(dataset, root, "test", trial)
    return TestSet(dataset=dataset, root=Path(root), **sample_columns(samples), trial=trial)


# ------------------------------------------------------------------------------------------------ evaluation


@dataclass
class EvaluationResult:
    """Percentages averaged over the protocol's trials, and each trial's own (``trials``)."""

    rank1: float
    rank5: float
    rank10: float
    rank20: float
    mAP: float
    mINP: float
    cmc: list[float]  # ranks 1..20
    protocol: str
    direction: str
    mode: str | None
    shot: str | None
    trials: list[dict[str, Any]]
    reranked: dict[str, float] | bool = False

    def as_dict(self) -> dict[str, Any]:
        """The same keys as ``vitool evaluate --json`` (without its provenance)."""
        return asdict(self)


def _rows(test_set: Any, n: int | None, pid: Any, cam: Any, modality: Any, path: Any) -> FeatureSet:
    """The identity, camera, modality and path of every row, from a TestSet/FeatureSet or the arrays."""
    if test_set is not None:
        if any(v is not None for v in (pid, cam, modality, path)):
            raise ValueError("test_set: give either a test set (or features file) or pid/cam/modality, not both")
        for name in ("pid", "cam", "modality", "path"):
            if not hasattr(test_set, name):
                raise ValueError(f"test_set: expected a TestSet or FeatureSet, got {type(test_set).__name__}")
        pid, cam, modality, path = test_set.pid, test_set.cam, test_set.modality, test_set.path
        recorded = getattr(test_set, "attrs", None) or {}
        dataset = getattr(test_set, "dataset", None) or recorded.get("dataset")
        split = recorded.get("split")  # a train split is refused under a dataset's protocol
    else:
        if pid is None or modality is None:
            raise ValueError("pid, modality: give them (and cam, path where the protocol needs them) or a test_set")
        dataset = split = None
    pid = _array(pid, "pid", 1, "iu", n)
    n = len(pid)
    modality = _array(modality, "modality", 1, "iub", n)
    if not np.isin(modality, (0, 1)).all():
        raise ValueError("modality: expected 0 (visible) or 1 (infrared) in every row")
    cam = np.full(n, -1, dtype=np.int64) if cam is None else _array(cam, "cam", 1, "iu", n)
    if path is None:  # the official gallery draws order images by path; row order stands in for it
        path = np.array([f"{i:09d}" for i in range(n)], dtype=object)
    elif len(path) != n:
        raise ValueError(f"path: expected {n} rows (one per image), got {len(path)}")
    return FeatureSet(
        np.zeros((n, 1), np.float32), np.asarray(path, dtype=object), pid, cam, modality.astype(np.uint8),
        attrs={k: v for k, v in (("dataset", dataset), ("split", split)) if v},
    )  # fmt: skip


def protocol_trials(
    test_set: Any,
    protocol: str | None = None,
    mode: str = "all",
    shot: str = "single",
    direction: str | None = None,
    trials: int = 10,
    deen_swap: bool = False,
) -> list[Trial]:
    """Each trial's query and gallery rows (``Trial.query``, ``Trial.gallery``: indices into the test
    set), the official gallery draws included; ``protocol`` defaults to the test set's dataset's."""
    from vitool.evaluation.protocols import build_trials, check_protocol_fits, protocol_spec

    rows = _rows(test_set, None, None, None, None, None)
    spec = protocol_spec(protocol, rows.attrs.get("dataset"), mode, shot, direction, trials, deen_swap)
    check_protocol_fits(rows.attrs.get("dataset"), spec.protocol, "test_set", split=rows.attrs.get("split"))
    return build_trials(spec, rows.path, rows.pid, rows.cam, rows.modality, "test_set")


def evaluate(
    features: Any,
    test_set: Any = None,
    *,
    pid: Any = None,
    cam: Any = None,
    modality: Any = None,
    path: Any = None,
    protocol: str | None = None,
    mode: str = "all",
    shot: str = "single",
    direction: str | None = None,
    trials: int = 10,
    deen_swap: bool = False,
    rerank: bool | Rerank = False,
    device: str = "cpu",
    cross_dataset: bool = False,
) -> EvaluationResult:
    """Rank-1/5/10/20, mAP and mINP of ``features`` [N, D] under a literature protocol, as ``vitool
    evaluate`` computes them.

    The rows' identities, cameras and modalities come from ``test_set`` (a :class:`TestSet` or a
    :class:`FeatureSet`, whose row order the features must follow) or from ``pid``, ``cam``,
    ``modality`` and ``path``. SYSU's and LLCM's official gallery draws need the image paths (a test set
    has them). ``protocol`` is "sysu" (``mode`` all or indoor), "regdb", "llcm" or "generic"; by default the
    test set's own; another dataset's protocol is refused unless ``cross_dataset``. ``rerank`` True (or a
    :class:`Rerank`) k-reciprocal re-ranks every trial; ``device="cuda"`` computes the products on the GPU.
    """
    from vitool.evaluation.evaluate import score
    from vitool.evaluation.protocols import protocol_spec

    emb = _array(features, "features", 2, "f")
    rows = _rows(test_set, len(emb), pid, cam, modality, path)
    rows.features = emb.astype(np.float32, copy=False)
    spec = protocol_spec(protocol, rows.attrs.get("dataset"), mode, shot, direction, trials, deen_swap)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device: expected cpu or cuda, got {device!r}")
    reranking = Rerank() if rerank is True else (rerank or None)
    if reranking is not None and not isinstance(reranking, Rerank):
        raise ValueError(f"rerank: expected True, False or a vitool.Rerank, got {rerank!r}")
    out = score(rows, spec, "features", device, "test_set", reranking, cross_dataset)
    keys = {f for f in EvaluationResult.__dataclass_fields__}
    return EvaluationResult(**{k: v for k, v in out.items() if k in keys})


def check_method(name: str, options: dict[str, Any] | None = None) -> list[str]:
    """Run the battery of the training contract on the registered method ``name`` (a plugin's too): its
    labels, a finite loss whose gradient reaches the backbone, its report, its checkpointed state and a
    bit-identical resume, on tiny generated pictures in seconds. Raises ``MethodCheckError`` (an
    AssertionError) naming the first check that fails; returns the checks passed."""
    from vitool.engine.battery import check_method as battery

    return battery(name, options)


# ---------------------------------------------------------------------------------------------- stage files


def read_features(path: str | Path) -> FeatureSet:
    """A features file (docs/formats.md): ``features`` [N, D], ``path``, ``pid``, ``cam``, ``modality``."""
    return _read_features(path)


def read_labels(path: str | Path) -> LabelSet:
    """A labels file (docs/formats.md): ``label`` (-1 none), ``intra_label``, soft labels and match tables."""
    return _read_labels(path)


def write_features(
    path: str | Path, features: FeatureSet, config: dict[str, Any] | None = None, overwrite: bool = False
) -> None:
    """Write a features file atomically, with provenance (``config``: what made the features); an existing
    file is kept unless ``overwrite``."""
    _write_features(path, features, make_provenance(config or {}), overwrite)


def write_labels(
    path: str | Path, labels: LabelSet, config: dict[str, Any] | None = None, overwrite: bool = False
) -> None:
    """Write a labels file atomically, with provenance; an existing file is kept unless ``overwrite``."""
    _write_labels(path, labels, make_provenance(config or {}, seed=(config or {}).get("seed")), overwrite)


# ------------------------------------------------------------------------------------- clustering, association


def cluster_features(features: Any, modality: Any, method: str = "dbscan", **options: Any) -> np.ndarray:
    """Pseudo labels (-1 = outlier), per modality unless ``joint=True``, as ``vitool cluster``: ``method``
    "dbscan" (k-reciprocal Jaccard; options k1, k2, eps, min_samples) or "kmeans" (k, seed)."""
    from vitool.cluster import ClusterConfig, cluster_labels

    emb = _array(features, "features", 2, "f")
    mod = _array(modality, "modality", 1, "iub", len(emb))
    unknown = sorted(set(options) - set(ClusterConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"options: unknown {', '.join(unknown)}; use {', '.join(ClusterConfig.__dataclass_fields__)}")
    if method not in ("dbscan", "kmeans"):
        raise ValueError(f"method: expected dbscan or kmeans, got {method!r}")
    return cluster_labels(emb.astype(np.float32, copy=False), mod, ClusterConfig(method=method, **options))


def assign_labels(
    features: Any,
    modality: Any,
    intra_labels: Any,
    method: str,
    probs: Any = None,
    experts: dict[str, Any] | None = None,
    **params: Any,
):
    """Both modalities in one label space from per-modality labels ``intra_labels`` (-1 = outlier), as
    ``vitool assign-labels``: ``method`` "ot" (OTLA), "mult", "experts" (CRE) or "hungarian" (PGM). Returns
    an ``Assignment`` (``label``, ``intra_label``, ``soft``, ``extra``, ``attrs``)."""
    from vitool.assign import METHODS, assign

    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    emb = _array(features, "features", 2, "f")
    mod = _array(modality, "modality", 1, "iub", len(emb))
    intra = _array(intra_labels, "intra_labels", 1, "iu", len(emb)).astype(np.int64)
    probs = None if probs is None else _array(probs, "probs", 2, "f", len(emb))
    return assign(method, emb.astype(np.float32, copy=False), mod, intra, "intra_labels", probs, experts, **params)


# ---------------------------------------------------------------------------------------------------- models


def load_model(checkpoint: str | Path):
    """The network of a vitool checkpoint (trained, or made by :func:`convert_checkpoint`), loaded with
    ``weights_only=True``; ``model(images, modality)`` returns its outputs, ``model.config`` its recipe."""
    from vitool.models import build_model

    return build_model(checkpoint)


def extract_features(
    model: Any, test_set: TestSet, device: str = "auto", batch_size: int = 64, workers: int = 0
) -> FeatureSet:
    """A vitool model's (or checkpoint's) test features of ``test_set`` with its own recipe (size, flip,
    L2), exactly as ``vitool extract-features`` writes them."""
    from vitool.stages import extract_samples

    if isinstance(model, str | Path):
        model = load_model(model)
    if not isinstance(test_set, TestSet):
        raise ValueError(f"test_set: expected a vitool.TestSet (load_test_set), got {type(test_set).__name__}")
    samples, base, attrs = test_set.samples(), test_set.image_root(), test_set.file_attrs()
    return extract_samples(samples, base, attrs, lambda: model, device, batch_size, None, workers).features

"""Stage files: the versioned HDF5 contract between vitool subcommands (docs/formats.md).

Two kinds of file exist, told apart by the root attribute ``vitool_format``:

* ``features``: one row per image, ``features`` [N, D] plus ``path``, ``pid``, ``cam``, ``modality``.
* ``labels``: one row per image, ``path``, ``modality``, ``label`` plus optional refinements.

Readers check only the format name, the schema version and the required datasets with their dtypes;
provenance, method and params are informational. Writers are atomic: a temporary file in the target
folder is renamed onto the final name only once it is complete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from vitool import __version__
from vitool.errors import VitoolError
from vitool.modality import INFRARED, MODALITY_NAMES, VISIBLE

SCHEMA_VERSION = 1
FEATURES = "features"
LABELS = "labels"
IMAGE_CACHE = "image_cache"  # vitool cache (vitool.data.cache), summarised by vitool info

_STR = h5py.string_dtype("utf-8")


@dataclass
class FeatureSet:
    """The content of a features file; arrays are aligned on the first axis."""

    features: np.ndarray
    path: np.ndarray
    pid: np.ndarray
    cam: np.ndarray
    modality: np.ndarray
    features_pre_bn: np.ndarray | None = None
    probs: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def embedding(self, name: str, where: str | Path) -> np.ndarray:
        """The ``features`` or ``features_pre_bn`` dataset; a one-line error names a missing one."""
        if name == "features":
            return self.features
        if name == "features_pre_bn" and self.features_pre_bn is not None:
            return self.features_pre_bn
        raise VitoolError(where, f"has no dataset '{name}'", "use --feature features")

    def __len__(self) -> int:
        return len(self.path)


@dataclass
class LabelSet:
    """The content of a labels file; ``label`` -1 means unlabelled or outlier."""

    path: np.ndarray
    modality: np.ndarray
    label: np.ndarray
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    confidence: np.ndarray | None = None
    soft: np.ndarray | None = None
    intra_label: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.path)


# ----------------------------------------------------------------------------------------------- provenance


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def machine_facts() -> dict[str, Any]:
    """The machine a file was made on: the same seed gives another run on another CPU (or thread count),
    so paired comparisons check that both runs of a pair share these."""
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    facts: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    torch = sys.modules.get("torch")  # only when the command already uses torch: io does not import it
    if torch is not None:
        facts["torch"] = str(torch.__version__)  # a plain str: checkpoints load with weights_only
        facts["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name()
    return facts


def _command() -> str:
    """The vitool command line while one runs; otherwise the Python program that called the API."""
    cli = sys.modules.get("vitool.cli")
    if cli is not None and getattr(cli, "RUNNING", False):
        return " ".join(["vitool", *sys.argv[1:]])
    return " ".join(["python", *sys.argv]).strip() + " (vitool Python API)"


def make_provenance(
    config: dict[str, Any],
    seed: int | None = None,
    inputs: dict[str, str] | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """What made a file: version, command line, effective config, seed, input hashes and the machine."""
    return {
        "vitool_version": __version__,
        "command": _command(),
        "config": config,
        "seed": seed,
        "checkpoint_sha256": checkpoint,
        "inputs": inputs or {},
        "machine": machine_facts(),
    }


# ------------------------------------------------------------------------------------------- atomic writes


_OUTPUT_FIXES = {
    errno.EACCES: ("cannot be written (permission denied)", "choose a folder you can write to"),
    errno.EPERM: ("cannot be written (operation not permitted)", "choose a folder you can write to"),
    errno.EROFS: ("cannot be written (read-only file system)", "choose a folder on a writable disk"),
    errno.ENOSPC: ("cannot be written (no space left on the device)", "free some space or write elsewhere"),
    errno.EDQUOT: ("cannot be written (disk quota exceeded)", "free some space or write elsewhere"),
    errno.EFBIG: ("cannot be written (file too large for this file system)", "write it elsewhere"),
    errno.ENOTDIR: ("cannot be written: a part of its path is a file, not a folder", "fix the path"),
    errno.ENAMETOOLONG: ("cannot be written: the name is too long for the file system", "choose a shorter name"),
}


def output_error(path: str | Path, exc: OSError) -> VitoolError:
    """An OSError met while writing ``path`` as one line naming the path, what went wrong and the fix."""
    problem, fix = _OUTPUT_FIXES.get(exc.errno, (f"cannot be written ({exc.strerror or exc})", "check the path"))
    return VitoolError(path, problem, fix)


def temporary_name(path: Path, tag: str = "tmp") -> Path:
    """A hidden name beside ``path`` for a file being written: unique per process and output, and short
    enough for any file system (a legal 255-byte name must still get a legal temporary name)."""
    digest = hashlib.sha1(path.name.encode()).hexdigest()[:8]
    stem = path.name.encode()[:64].decode(errors="ignore")  # 64 bytes: a name of 4-byte characters fits too
    return path.with_name(f".{stem}.{digest}.{os.getpid()}.{tag}")


def check_output(
    path: str | Path, overwrite: bool, inputs: tuple[str | Path | None, ...] = (), make_parent: bool = False
) -> Path:
    """Refuse to clobber a user's file (``overwrite`` or not, never one of the command's ``inputs``) and
    fail before any expensive work when the output cannot be written: a missing folder (created with
    ``make_parent``), a path through a file, a name too long, a folder without write access."""
    path = Path(path)
    try:
        _check_output(path, overwrite, inputs, make_parent)
    except OSError as exc:  # stat() itself can fail: a name too long, a folder without search access
        raise output_error(path, exc) from None
    return path


def _check_output(path: Path, overwrite: bool, inputs: tuple[str | Path | None, ...], make_parent: bool) -> None:
    if path.is_dir():
        raise VitoolError(path, "is a folder", "give a file name to -o")
    if path.exists():
        if not path.is_file():
            raise VitoolError(path, "is not a regular file (a device, a pipe)", "give a file name to -o")
        if not overwrite:
            raise VitoolError(
                path, "already exists", "pass --overwrite (overwrite=True from Python) or choose another name"
            )
        if any(source is not None and Path(source).exists() and path.samefile(source) for source in inputs):
            raise VitoolError(path, "is also this command's input", "write the output to another file")
    parent = path.parent
    for folder in (parent, *parent.parents):  # the deepest part of the path that exists
        if folder.exists():
            if not folder.is_dir():
                raise VitoolError(path, f"cannot be written: {folder} is a file, not a folder", "fix the path")
            break
    if make_parent:
        parent.mkdir(parents=True, exist_ok=True)
    if not parent.exists():
        raise VitoolError(parent, "output folder does not exist", "create it first")
    if len(path.name.encode()) > os.pathconf(parent, "PC_NAME_MAX"):
        raise OSError(errno.ENAMETOOLONG, os.strerror(errno.ENAMETOOLONG))
    probe = temporary_name(path, "probe")  # a real write answers for permissions and read-only mounts alike
    probe.touch(exist_ok=False)
    probe.unlink()


@contextlib.contextmanager
def atomic_output(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success. The body only
    writes, so an OSError inside it (no space, permission) is this output's error, said in one line."""
    path = check_output(path, overwrite)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(path, exc) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------- writing


def _write_attrs(handle: h5py.File, kind: str, attrs: dict[str, Any]) -> None:
    handle.attrs["vitool_format"] = kind
    handle.attrs["vitool_version"] = np.int64(SCHEMA_VERSION)
    for key, value in attrs.items():
        if isinstance(value, dict | list):
            value = json.dumps(value, sort_keys=True)
        handle.attrs[key] = value


def _write_datasets(handle: h5py.File, datasets: dict[str, np.ndarray | None]) -> None:
    for name, values in datasets.items():
        if values is None:
            continue
        values = np.asarray(values)
        if values.dtype.kind in "OUS":
            handle.create_dataset(name, data=[str(v) for v in values], dtype=_STR)
        else:
            handle.create_dataset(name, data=values)


def write_features(path: str | Path, fs: FeatureSet, provenance: dict[str, Any], overwrite: bool = False) -> None:
    validate_features(fs, path)
    with atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as handle:
        _write_attrs(handle, FEATURES, {**fs.attrs, "provenance": provenance})
        _write_datasets(
            handle,
            {
                "features": fs.features,
                "path": fs.path,
                "pid": fs.pid.astype(np.int64),
                "cam": fs.cam.astype(np.int64),
                "modality": fs.modality.astype(np.uint8),
                "features_pre_bn": fs.features_pre_bn,
                "probs": fs.probs,
                **fs.extra,
            },
        )


def write_labels(path: str | Path, ls: LabelSet, provenance: dict[str, Any], overwrite: bool = False) -> None:
    validate_labels(ls, path)
    attrs = {**ls.attrs, "method": ls.method, "params": ls.params, "provenance": provenance}
    with atomic_output(path, overwrite) as tmp, h5py.File(tmp, "w") as handle:
        _write_attrs(handle, LABELS, attrs)
        _write_datasets(
            handle,
            {
                "path": ls.path,
                "modality": ls.modality.astype(np.uint8),
                "label": ls.label.astype(np.int64),
                "confidence": ls.confidence,
                "soft": ls.soft,
                "intra_label": None if ls.intra_label is None else ls.intra_label.astype(np.int64),
                **ls.extra,
            },
        )


# ------------------------------------------------------------------------------------------------- reading


@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[h5py.File]:
    path = Path(path)
    if not path.exists():
        raise VitoolError(path, "no such file", "check the path")
    if path.is_dir():
        raise VitoolError(path, "is a folder, not a stage file", "give the path of an .h5 file")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise VitoolError(
            path, f"not a readable HDF5 file ({str(exc).split(';')[0].strip()})", "regenerate it with vitool"
        ) from None
    with handle:
        yield handle


def file_kind(handle: h5py.File, path: str | Path) -> str:
    """Return ``features`` or ``labels`` after checking the format name and schema version."""
    kind = handle.attrs.get("vitool_format")
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind not in (FEATURES, LABELS):
        raise VitoolError(
            path,
            "not a vitool stage file (root attribute vitool_format is missing or unknown)",
            "write it with vitool extract-features / cluster / assign-labels, see docs/formats.md",
        )
    version = handle.attrs.get("vitool_version")
    if not isinstance(version, int | np.integer):
        raise VitoolError(path, f"attribute vitool_version={version!r} is not an integer", "see docs/formats.md")
    if int(version) > SCHEMA_VERSION:
        raise VitoolError(
            path,
            f"schema vitool_version={int(version)} is newer than this vitool supports ({SCHEMA_VERSION})",
            "upgrade vitool",
        )
    if int(version) < 1:
        raise VitoolError(path, f"unknown schema vitool_version={int(version)}", "see docs/formats.md")
    return kind


def _attrs(handle: h5py.File) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in handle.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[key] = value
    out.pop("vitool_format", None)
    out.pop("vitool_version", None)
    return out


def _read(handle: h5py.File, path: str | Path, name: str, required: bool = True) -> np.ndarray | None:
    if name not in handle:
        if required:
            raise VitoolError(path, f"required dataset '{name}' is missing", "see docs/formats.md for the schema")
        return None
    ds = handle[name]
    if not isinstance(ds, h5py.Dataset):
        raise VitoolError(path, f"'{name}' is a group, not a dataset", "see docs/formats.md")
    if h5py.check_string_dtype(ds.dtype) is not None:
        try:
            return np.asarray(ds.asstr()[()], dtype=object)
        except UnicodeDecodeError as exc:
            raise VitoolError(
                path,
                f"dataset '{name}' holds bytes that are not UTF-8 ({exc.reason})",
                "regenerate the file with vitool",
            ) from None
    return ds[()]


def read_features(path: str | Path) -> FeatureSet:
    with _open(path) as handle:
        kind = file_kind(handle, path)
        if kind != FEATURES:
            raise VitoolError(path, f"is a {kind} file, a features file is needed", "pass the features file")
        known = {"features", "path", "pid", "cam", "modality", "features_pre_bn", "probs"}
        fs = FeatureSet(
            features=_read(handle, path, "features"),
            path=_read(handle, path, "path"),
            pid=_read(handle, path, "pid"),
            cam=_read(handle, path, "cam"),
            modality=_read(handle, path, "modality"),
            features_pre_bn=_read(handle, path, "features_pre_bn", required=False),
            probs=_read(handle, path, "probs", required=False),
            extra={k: _read(handle, path, k) for k in handle if k not in known},
            attrs=_attrs(handle),
        )
    validate_features(fs, path)
    return fs


def read_labels(path: str | Path) -> LabelSet:
    with _open(path) as handle:
        kind = file_kind(handle, path)
        if kind != LABELS:
            raise VitoolError(path, f"is a {kind} file, a labels file is needed", "pass the labels file")
        known = {"path", "modality", "label", "confidence", "soft", "intra_label"}
        attrs = _attrs(handle)
        params = attrs.pop("params", {})
        ls = LabelSet(
            path=_read(handle, path, "path"),
            modality=_read(handle, path, "modality"),
            label=_read(handle, path, "label"),
            method=str(attrs.pop("method", "")),
            params=params if isinstance(params, dict) else {},
            confidence=_read(handle, path, "confidence", required=False),
            soft=_read(handle, path, "soft", required=False),
            intra_label=_read(handle, path, "intra_label", required=False),
            extra={k: _read(handle, path, k) for k in handle if k not in known},
            attrs=attrs,
        )
    validate_labels(ls, path)
    return ls


def read_kind(path: str | Path) -> str:
    with _open(path) as handle:
        return file_kind(handle, path)


# ---------------------------------------------------------------------------------------------- validation


def _check_rows(path: str | Path, n: int, name: str, values: np.ndarray | None, kinds: str, ndim: int) -> None:
    if values is None:
        return
    if values.dtype.kind not in kinds:
        raise VitoolError(path, f"dataset '{name}' has dtype {values.dtype}", "see docs/formats.md for the dtypes")
    if values.ndim != ndim or len(values) != n:
        raise VitoolError(
            path,
            f"dataset '{name}' has shape {values.shape}, expected {n} rows and {ndim} dimension(s)",
            "all datasets must be aligned with 'path'",
        )


def _check_path_and_modality(path: str | Path, paths: np.ndarray, modality: np.ndarray) -> int:
    n = len(paths)
    if paths.dtype.kind not in "OUS" or paths.ndim != 1:
        raise VitoolError(path, "dataset 'path' must hold UTF-8 strings", "see docs/formats.md")
    _check_rows(path, n, "modality", modality, "iu", 1)
    bad = ~np.isin(modality, (VISIBLE, INFRARED))
    if bad.any():
        raise VitoolError(path, f"dataset 'modality' holds {modality[bad][0]}", "use 0 (visible) or 1 (infrared)")
    if len(set(paths.tolist())) != n:
        raise VitoolError(path, "dataset 'path' has duplicate entries", "paths are the unique key of a row")
    return n


def validate_features(fs: FeatureSet, path: str | Path) -> None:
    n = _check_path_and_modality(path, fs.path, fs.modality)
    if fs.features.dtype not in (np.float16, np.float32):
        raise VitoolError(path, f"dataset 'features' has dtype {fs.features.dtype}", "use float32 or float16")
    _check_rows(path, n, "features", fs.features, "f", 2)
    _check_rows(path, n, "pid", fs.pid, "iu", 1)
    _check_rows(path, n, "cam", fs.cam, "iu", 1)
    _check_rows(path, n, "features_pre_bn", fs.features_pre_bn, "f", 2)
    _check_rows(path, n, "probs", fs.probs, "f", 2)
    for name in ("features", "features_pre_bn"):
        values = getattr(fs, name)
        if values is None:
            continue
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():
            first = int(np.flatnonzero(~finite)[0])
            raise VitoolError(
                path,
                f"dataset '{name}' has NaN/Inf in {int((~finite).sum())} rows (first: row {first}, {fs.path[first]})",
                "re-extract the features (a diverged checkpoint?)",
            )
        # a network's embedding is never exactly zero: such rows are erased or unwritten bytes, which would
        # otherwise score as ties
        zero = ~values.any(axis=1)
        if zero.any():
            first = int(np.flatnonzero(zero)[0])
            raise VitoolError(
                path,
                f"dataset '{name}' has {int(zero.sum())} all-zero rows (first: row {first}, {fs.path[first]})",
                "re-extract the features: a damaged or unfinished file",
            )


def validate_labels(ls: LabelSet, path: str | Path) -> None:
    n = _check_path_and_modality(path, ls.path, ls.modality)
    _check_rows(path, n, "label", ls.label, "iu", 1)
    _check_rows(path, n, "intra_label", ls.intra_label, "iu", 1)
    _check_rows(path, n, "confidence", ls.confidence, "f", 1)
    _check_rows(path, n, "soft", ls.soft, "f", 2)


def rows_by_path(ls: LabelSet, paths: list[str], labels_path: str | Path, what: str, fix: str) -> np.ndarray:
    """Row index into ``ls`` for each of ``paths`` (labels join images by ``path``); a missing one is a
    one-line error naming how many ``what`` have no row."""
    where = {p: i for i, p in enumerate(ls.path.tolist())}
    index = np.array([where.get(p, -1) for p in paths], dtype=np.int64)
    missing = index < 0
    if missing.any():
        first = paths[int(np.flatnonzero(missing)[0])]
        raise VitoolError(
            labels_path, f"has no row for {int(missing.sum())} of {len(paths)} {what} (first: {first})", fix
        )
    return index


def align_labels(fs: FeatureSet, ls: LabelSet, labels_path: str | Path) -> np.ndarray:
    """Row index into ``ls`` for every row of ``fs``."""
    return rows_by_path(
        ls, fs.path.tolist(), labels_path, "feature paths", "use a labels file made from the same images"
    )


def summarise(path: str | Path) -> dict[str, Any]:
    """What ``vitool info`` prints: the kind, size, modalities, identities and provenance of a file."""
    with _open(path) as handle:
        if handle.attrs.get("vitool_format") in (IMAGE_CACHE, IMAGE_CACHE.encode()):
            return {
                "file": str(path),
                "kind": IMAGE_CACHE,
                "rows": len(handle["path"]) if "path" in handle else 0,
                "size": f"{int(handle.attrs.get('height', 0))}x{int(handle.attrs.get('width', 0))}",
                "provenance": _attrs(handle).get("provenance", {}),
            }
    kind = read_kind(path)
    data = read_features(path) if kind == FEATURES else read_labels(path)
    out: dict[str, Any] = {"file": str(path), "kind": kind, "schema_version": SCHEMA_VERSION, "rows": len(data)}
    for m, name in MODALITY_NAMES.items():
        out[f"{name}_rows"] = int((data.modality == m).sum())
    if isinstance(data, FeatureSet):
        out["dim"] = int(data.features.shape[1])
        out["dtype"] = str(data.features.dtype)
        out["identities"] = int(len(np.unique(data.pid[data.pid >= 0])))
        out["cameras"] = sorted(int(c) for c in np.unique(data.cam))
        out["optional"] = [k for k in ("features_pre_bn", "probs") if getattr(data, k) is not None] + sorted(data.extra)
    else:
        labelled = data.label >= 0
        out["method"] = data.method
        out["labels"] = int(len(np.unique(data.label[labelled])))
        out["unlabelled_rows"] = int((~labelled).sum())
        out["optional"] = [k for k in ("confidence", "soft", "intra_label") if getattr(data, k) is not None]
        out["params"] = data.params
    out.update({k: v for k, v in data.attrs.items() if k != "provenance"})
    out["provenance"] = data.attrs.get("provenance", {})
    return out

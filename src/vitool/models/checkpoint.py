"""Self-describing model checkpoints: the model config travels with the weights, so
``extract-features --checkpoint`` and ``evaluate --checkpoint`` need nothing else.

A checkpoint is data, never code. Every file is read with ``torch.load(weights_only=True)``, PyTorch's
restricted unpickler, which builds tensors, numbers, strings, lists, tuples and dicts and refuses any other
Python global, so a file whose pickle names ``os.system`` (or anything else) fails before anything runs.
What vitool writes holds only those types (:func:`plain` turns numpy arrays into tensors on the way out).
Released repositories' checkpoints hold numpy arrays and scalars (AGW's ``cmc`` array); they load with
exactly numpy's array, dtype and scalar reconstruction globals allowed through torch's safe-globals
mechanism, and nothing more.
"""

from __future__ import annotations

import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitool import __version__
from vitool.errors import VitoolError
from vitool.io import atomic_output
from vitool.models.network import ModelConfig, VIReIDNet

CHECKPOINT_FORMAT = 1
REQUIRED_KEYS = ("model_config", "model_state")


def plain(value: Any) -> Any:
    """``value`` with every numpy array turned into a tensor and every numpy scalar into a Python number,
    recursively through dicts, lists and tuples: what ``weights_only=True`` loads without extra globals."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value).copy())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    return value


def _numpy_globals() -> list[Any]:
    """The globals a numpy array, dtype or scalar pickle needs, under both numpy 1 and 2 module names:
    what released repositories' checkpoints need, and nothing that can run a command."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    dtype_classes = [type(np.dtype(t)) for t in "?bhilqBHILQefdgFDGUS"]
    found: list[Any] = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtype_classes]
    # the same functions under the module path the other numpy major version pickles them with
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        if module != multiarray.__name__:
            found += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    return found


def save_checkpoint(path: str | Path, model: VIReIDNet, extra: dict[str, Any] | None = None) -> None:
    """Atomic write: a killed process never leaves a truncated checkpoint under the final name."""
    state = {
        "vitool_checkpoint": CHECKPOINT_FORMAT,
        "vitool_version": __version__,
        "model_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        **plain(extra or {}),
    }
    try:
        with atomic_output(path, overwrite=True) as tmp:  # an OSError is atomic_output's one line
            torch.save(state, tmp)
    except RuntimeError as exc:  # torch's own writer reports a full disk this way
        raise VitoolError(
            path,
            f"could not be written ({exc})".replace("\n", " "),
            "free disk space; any earlier file there is intact",
        ) from None


def _refused_global(exc: Exception) -> str | None:
    """The global that torch's restricted unpickler refused, if that is why the load failed."""
    match = re.search(r"GLOBAL ([\w.]+)|but got <class '([\w.]+)'>", str(exc))
    return (match.group(1) or match.group(2)) if match else None


def load_safe(path: str | Path) -> Any:
    """Whatever ``path`` holds, read without running any code it carries; one-line errors otherwise."""
    path = Path(path)
    if not path.is_file():
        raise VitoolError(path, "checkpoint does not exist", "check the path")
    try:
        # torch warns on stderr about odd pickle protocols; the error below is the one line the user sees
        with torch.serialization.safe_globals(_numpy_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = _refused_global(exc)
        if name:
            raise VitoolError(
                path,
                f"is not a safe checkpoint: it asks for the Python object '{name}', which vitool never loads "
                "(nothing in the file was run)",
                "use a checkpoint written by vitool train; if you wrote this file "
                "yourself and trust it, re-save it holding only tensors, numbers, strings, lists and dicts",
            ) from None
        match = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        detail = match.group(1).strip() if match else "refused by PyTorch's restricted unpickler"
        problem = f"cannot be read as a torch checkpoint ({detail}; nothing in the file was run)"
        raise VitoolError(path, problem, "pass a vitool .pt") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, AttributeError, TypeError) as exc:
        problem = f"cannot be read as a torch checkpoint ({type(exc).__name__}: {_first_line(exc)})"
        raise VitoolError(path, problem, "pass a vitool .pt") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


def load_checkpoint(path: str | Path, keys: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, Any]:
    """A vitool checkpoint as a dict, checked to hold ``keys``."""
    path = Path(path)
    state = load_safe(path)
    if not isinstance(state, dict) or state.get("vitool_checkpoint") != CHECKPOINT_FORMAT:
        raise VitoolError(
            path,
            "is not a vitool checkpoint (no vitool_checkpoint=1 entry)",
            "pass a checkpoint written by vitool train, or use --backbone/--pretrained",
        )
    missing = [k for k in keys if k not in state]
    if missing:
        raise VitoolError(
            path,
            f"is an incomplete vitool checkpoint: no {', '.join(missing)}",
            "use the run's other checkpoint (last.pt or best.pt) or retrain",
        )
    return state


def model_from_checkpoint(path: str | Path) -> VIReIDNet:
    state = load_checkpoint(path)
    try:
        config = ModelConfig(**state["model_config"])
        model = VIReIDNet(config, pretrained="none")
    except (TypeError, ValueError, KeyError) as exc:
        raise VitoolError(
            path, f"model_config does not build a network ({_first_line(exc)})", "use a checkpoint written by vitool"
        ) from None
    load_weights(model, state["model_state"], path)
    return model


def start_from(model: VIReIDNet, source: str | Path) -> tuple[Path, dict[str, Any]]:
    """Load into ``model`` the network weights of a vitool checkpoint (or of a run folder's last.pt) where
    names and shapes agree: a classifier sized for other labels keeps its fresh start. A checkpoint of
    another network (backbone, stems, non-local blocks) is refused in one line. Returns the file read and
    what it holds (the method's heads are the method's to take: ``Method.start_from``)."""
    path = Path(source)
    path = path / "last.pt" if path.is_dir() else path
    if not path.is_file():
        raise VitoolError(
            path, "is no checkpoint to start from", "pass a vitool checkpoint or a run folder with last.pt"
        )
    state = load_checkpoint(path)
    theirs, ours = state["model_config"], model.config.to_dict()
    for key in ("backbone", "two_stream", "non_local", "stem_relu"):
        if theirs.get(key, ours[key]) != ours[key]:
            raise VitoolError(
                path,
                f"holds a network with {key} = {theirs.get(key)!r}, this run builds {key} = {ours[key]!r}",
                "start from a checkpoint of the same network, or change the run's backbone",
            )
    load_fitting(model, state["model_state"])
    return path, state


def load_fitting(module: torch.nn.Module, weights: dict[str, torch.Tensor]) -> list[str]:
    """Load the entries of ``weights`` whose names and shapes ``module`` has; the rest of ``module`` keeps
    its start. Returns the names loaded."""
    own = module.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(fitting, strict=False)
    return list(fitting)


def load_weights(model: torch.nn.Module, weights: Any, path: str | Path) -> None:
    """``model.load_state_dict`` with a mismatch as one line naming the first offending keys."""
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError, KeyError) as exc:
        detail = " ".join(str(exc).split())
        raise VitoolError(
            path,
            f"model_state does not fit its model_config ({detail[:240]})",
            "use the checkpoint together with the run that wrote it, or retrain",
        ) from None

"""A training run's folder: one writer at a time, nothing left behind by a failed start, and the rules of a
new run against a resumed one (what is read from the folder, what the command may change).

The lock is an ``fcntl`` lock on ``RUN/.lock``, which holds the writer's pid: the kernel releases it when
the process ends in any way (kill -9 included), so a stale file never blocks a later ``--resume``. The
file stays with the run; a failed start removes it with the rest of what it made, and a process that
locked the removed file (it opened it just before) finds the name gone or on another inode and refuses,
so two writers never hold two different files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from vitool.engine.config import TrainConfig, load_config
from vitool.errors import VitoolError
from vitool.io import output_error

LOCK = ".lock"
RUN_PLACE = ("device", "amp", "workers")  # where a run computes: a resume takes them from where it runs now
RESUME_KEYS = ("epochs", "root", *RUN_PLACE)  # what a resume may give anew; the rest is the saved run's
PATH_KEYS = ("root", "labels", "image_cache", "pretrained", "init")  # stored absolute: a resume works from anywhere
NOT_PATHS = ("", "imagenet", "none")  # pretrained's names of weights rather than files


def _absolute(config: TrainConfig) -> TrainConfig:
    paths = {k: str(Path(v).absolute()) for k in PATH_KEYS if (v := getattr(config, k)) not in NOT_PATHS}
    return replace(config, **paths)


def run_config(
    output: Path | None, resume: Path | None, config: str | Path | None, overrides: dict[str, Any]
) -> tuple[TrainConfig, Path]:
    """The configuration of a new run in ``output`` (``config`` then ``overrides``), or of the run in
    ``resume`` (its config.toml, with only ``RESUME_KEYS`` taken from ``overrides``), and its folder."""
    if (output is None) == (resume is None):
        raise VitoolError(None, "give either a new run folder (-o) or one to resume (--resume)")
    if resume is not None:
        if not (resume / "last.pt").is_file():
            raise VitoolError(resume, "has no last.pt to resume from", "pass the folder of an earlier vitool train")
        given = {k: v for k, v in overrides.items() if v is not None}
        ignored = [k for k in given if k not in RESUME_KEYS] + (["config"] if config is not None else [])
        if ignored:  # a value typed for the resumed run that it would not use
            raise VitoolError(
                resume,
                f"a resumed run keeps its saved {ignored[0]}",
                f"drop it (a resume may change only {', '.join(RESUME_KEYS)}), or start a new run with -o",
            )
        kept = {k: v for k, v in given.items() if k in RESUME_KEYS}
        kept.setdefault("device", "auto")  # the machine it resumes on, unless --device says otherwise
        return _absolute(load_config(resume / "config.toml", kept)), resume
    cfg = load_config(config, overrides)
    if not cfg.root:
        raise VitoolError(config, "no dataset root", "pass --root DIR or set root in the config")
    return _absolute(cfg), output


@contextlib.contextmanager
def run_folder(path: Path, resume: bool) -> Iterator[Path]:
    """Hold ``path`` as this process's run folder: refuse one another process writes, a new run in a
    folder that is not empty, and on an error before the first checkpoint remove what this run created
    (a failed start leaves the folder as it was, so ``-o`` may name it again)."""
    path = Path(path)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        had_lock = (path / LOCK).exists()
        handle = open(path / LOCK, "a+")  # held for the whole run
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(handle.fileno()).st_ino != os.stat(path / LOCK).st_ino:  # removed by a failed start
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise VitoolError(
                path, f"is in use by another vitool train (pid {holder})", "wait for it to end, or use another folder"
            ) from None
        before = set(os.listdir(path)) - {LOCK}
        if not resume and before:
            if not had_lock:  # a user's folder: leave it as it was
                (path / LOCK).unlink()
            raise VitoolError(path, "exists and is not empty", "choose a new -o folder or --resume it")
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        except BaseException:
            if not (path / "last.pt").exists():  # failed before its first checkpoint: nothing to resume
                _remove_new(path, before, created)
            raise
    finally:
        handle.close()  # releases the lock


def _remove_new(path: Path, before: set[str], created: bool) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in set(os.listdir(path)) - before - {LOCK}:
        target = path / name
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        (path / LOCK).unlink()

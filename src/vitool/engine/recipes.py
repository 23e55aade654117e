"""Training recipes shipped inside the package (``vitool/recipes/*.toml``): each paper's released settings
and the CPU demos, found by name wherever vitool is installed (``--config pclhd``, ``base = "demo"``).

A recipe is a plain config file whose first two lines are ``# recipe: <summary>`` and ``# gpus: <what it
assumes>``, which ``vitool recipes`` lists.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from vitool.errors import VitoolError

SUFFIX = ".toml"


def _folder():
    return resources.files("vitool") / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.name[: -len(SUFFIX)] for p in _folder().iterdir() if p.name.endswith(SUFFIX))


def recipe_path(name: str) -> Path | None:
    """The packaged recipe called ``name`` (with or without ``.toml``), or None."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if "/" in stem or stem not in recipe_names():
        return None
    return Path(str(_folder() / f"{stem}{SUFFIX}"))


def resolve_config(path: str | Path) -> Path:
    """A config file by path; when no such file exists, the packaged recipe of that name."""
    path = Path(path)
    if path.is_file():
        return path
    return recipe_path(str(path)) or path


@dataclass
class RecipeSummary:
    name: str
    dataset: str
    method: str
    backbone: str
    epochs: int
    gpus: str
    summary: str


def describe(name: str) -> RecipeSummary:
    from vitool.engine.config import read_config_file

    path = recipe_path(name)
    if path is None:
        raise VitoolError(None, f"no packaged recipe '{name}'", f"use one of {', '.join(recipe_names())}")
    notes = {}
    for line in path.read_text().splitlines()[:2]:
        key, _, value = line.lstrip("# ").partition(":")
        notes[key] = value.strip()
    values = read_config_file(path)
    return RecipeSummary(
        name=name,
        dataset=str(values.get("dataset", "sysu")),
        method=str(values.get("method", "supervised")),
        backbone=str(values.get("backbone", "resnet50")),
        epochs=int(values.get("epochs", 81)),
        gpus=notes.get("gpus", ""),
        summary=notes.get("recipe", ""),
    )


def describe_all() -> list[dict]:
    return [asdict(describe(name)) for name in recipe_names()]

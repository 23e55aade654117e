"""Training recipes shipped inside the package (``vitool/recipes/*.toml``): each paper's released settings
and the CPU demos, found by name wherever vitool is installed (``--config pclhd``, ``base = "demo"``).

A recipe is a plain config file whose first two lines are ``# recipe: <summary>`` and ``# gpus: <what it
assumes>``, which ``vitool recipes`` lists (``vitool.engine.config.describe_recipe``). This module only
finds them; the config module reads them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

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

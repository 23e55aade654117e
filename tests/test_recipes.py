"""Recipes ship inside the package: `--config NAME` and `base = "NAME"` find them wherever vitool is
installed, `vitool recipes` lists and prints them, and a wheel installed outside the checkout has them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vitool.engine.config import load_config
from vitool.engine.recipes import recipe_names, recipe_path

from .conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"agw", "otla", "pclhd", "mult", "experts", "demo", "demo-unsupervised", "demo-mult"}


def test_every_recipe_is_packaged_and_loads():
    assert set(recipe_names()) == EXPECTED
    for name in EXPECTED:
        path = recipe_path(name)
        assert path.parent.name == "recipes" and path.parent.parent.name == "vitool"
        first, second = path.read_text().splitlines()[:2]
        assert first.startswith("# recipe: ") and second.startswith("# gpus: ")
        assert load_config(name, {}).method == load_config(path, {}).method
    assert (REPO / "configs" / "pclhd.toml").resolve() == recipe_path("pclhd.toml").resolve()  # the checkout's path


def test_config_by_name_a_local_file_wins_and_base_may_name_a_recipe(tmp_path, monkeypatch):
    assert load_config("pclhd", {}).epochs == 100 and load_config("demo-mult", {}).method == "mult"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pclhd").write_text('method = "otla"\nepochs = 3\n')
    assert load_config("pclhd", {}).method == "otla"  # a file of that name in the current folder wins
    (tmp_path / "mine.toml").write_text('base = "demo-unsupervised"\nepochs = 2\n')
    mine = load_config(tmp_path / "mine.toml", {})
    assert (mine.method, mine.epochs, mine.backbone) == ("pclhd", 2, "mobilenet_v2")
    res = run_cli("train", "--config", "no-such-recipe", "-o", tmp_path / "run")
    assert res.returncode == 1 and "vitool recipes" in res.stderr and not (tmp_path / "run").exists()


def test_recipes_command_lists_and_prints():
    res = run_cli("recipes")
    assert res.returncode == 0
    for name in EXPECTED:
        assert any(line.startswith(f"{name} ") for line in res.stdout.splitlines()), name
    rows = json.loads(run_cli("recipes", "--json").stdout)
    pclhd = next(r for r in rows if r["name"] == "pclhd")
    assert (pclhd["dataset"], pclhd["method"], pclhd["epochs"]) == ("sysu", "pclhd", 100) and "2" in pclhd["gpus"]
    assert run_cli("recipes", "mult").stdout == recipe_path("mult").read_text()
    res = run_cli("recipes", "market")
    assert res.returncode == 1 and "no packaged recipe 'market'" in res.stderr


def test_a_wheel_installed_outside_the_checkout_has_the_recipes(tmp_path):
    """Build the wheel, install it (no dependencies) into a fresh venv that sees this environment's packages
    through a .pth file, and resolve recipes by name from a folder outside the checkout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout on the path
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(REPO)]
    subprocess.run(build, check=True, capture_output=True, env=env)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip
    ours = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "zz_outer.pth").write_text("\n".join(ours) + "\n")  # dependencies, after the wheel's own
    wheel = next(wheels.glob("vitool-*.whl"))
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)]
    if subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "--version"], capture_output=True
    ).returncode:
        install = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", site, str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=env)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    code = (
        "import vitool, vitool.engine.recipes as r, pathlib; from vitool.engine.config import load_config\n"
        f"assert not pathlib.Path(vitool.__file__).is_relative_to({str(REPO)!r}), vitool.__file__\n"
        "print(load_config('pclhd', {}).epochs, sorted(r.recipe_names()) == sorted(%r))\n" % sorted(EXPECTED)
    )
    res = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=outside, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["100", "True"]
    cli = subprocess.run(
        [python, "-m", "vitool", "recipes", "demo"], capture_output=True, text=True, cwd=outside, env=env
    )
    assert cli.returncode == 0 and cli.stdout.startswith("# recipe: CPU demo"), cli.stderr

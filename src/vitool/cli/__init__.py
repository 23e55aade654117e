"""The ``vitool`` command line: each command parses its options, calls one stage of ``vitool.stages``
and prints the result.

Start-up stays light: typer, the standard library and vitool's numpy-free choice lists; each command
imports what it needs. Bad input raises ``VitoolError`` anywhere below, which ``main`` prints as one
line on stderr with exit code 1; usage errors are Typer's (exit code 2).
"""

from __future__ import annotations

import sys

from vitool.cli import data, features, labels, runs  # noqa: F401  (each registers its commands)
from vitool.cli.common import app
from vitool.errors import VitoolError

__all__ = ["app", "main"]

ORDER = ("synth", "extract-features", "evaluate", "convert", "export", "cluster", "assign-labels", "weak-labels")
ORDER += ("cache", "check-dataset", "train", "recipes", "compare", "info")  # --help lists them in the pipeline's order


def _place(command) -> int:
    """A command's place in --help: ORDER's, and after them any command ORDER does not name yet."""
    name = command.name or command.callback.__name__
    return ORDER.index(name) if name in ORDER else len(ORDER)


app.registered_commands.sort(key=_place)

RUNNING = False  # set while a command runs: its files record this command line (io.make_provenance)


def main() -> None:
    global RUNNING
    RUNNING = True
    try:
        app()
    except VitoolError as err:
        sys.stderr.write(f"vitool: error: {err.line()}\n")
        sys.exit(1)
    except OSError as err:  # the machine said no where no writer expected it (a disk full mid-read, a lost mount)
        fix = "check the path, its permissions and the disk"
        where = f"{err.filename}: " if err.filename else ""
        sys.stderr.write(f"vitool: error: {where}{err.strerror or err}; {fix}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("vitool: interrupted\n")
        sys.exit(130)
    finally:
        RUNNING = False

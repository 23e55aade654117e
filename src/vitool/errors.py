"""The one exception type that the CLI turns into a single stderr line and exit code 1."""

from __future__ import annotations

from pathlib import Path


class VitoolError(ValueError):
    """Bad input from the user: a file, a path or a value, with the fix. A ``ValueError``, so that code
    calling the Python API (vitool.api) catches bad arguments and bad files alike.

    The message is rendered as one physical line: ``vitool: error: FILE: problem; fix``.
    """

    def __init__(self, where: str | Path | None, problem: str = "", fix: str = "") -> None:
        self.where = str(where) if where is not None else None
        self.problem = problem
        self.fix = fix
        if not problem and self.where and "Traceback" in self.where:
            # re-raised from a DataLoader worker as VitoolError(<traceback text>): keep our own line only
            self.where, self.problem = None, self.where.rstrip().rsplit("VitoolError: ", 1)[-1]
        super().__init__(self.line())

    def line(self) -> str:
        parts = [f"{self.where}: " if self.where else "", self.problem]
        if self.fix:
            parts.append(f"; {self.fix}")
        return " ".join("".join(parts).split())  # one physical line, whatever the inputs held


class MethodCheckError(AssertionError):
    """A training method broke the contract the engine relies on (``vitool.check_method``); the message
    names the check."""

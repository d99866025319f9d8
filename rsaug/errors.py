"""Exceptions for bad user input.

Library code raises :class:`InputError` for anything the user can fix (a missing file, a corrupt raster, a
mask value outside the class scheme...). The CLI turns it into a one-line message and exit code 2.
"""
from __future__ import annotations

import os


class InputError(Exception):
    """A problem with user input, reported as ``<path>: <problem>``.

    Args:
        path: The offending file or directory (or ``None`` when no file is involved).
        problem: A short, one-line description of what is wrong.
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The one-line message shown to the user."""
        return f"{self.path}: {self.problem}" if self.path else self.problem

"""Exceptions the user sees as one line (never a traceback).

* :class:`InputError`: anything the user can fix (a missing file, a corrupt raster, a mask value outside the
  class scheme, an impossible option value...). The CLI prints it as ``Error: <path>: <problem>`` and exits 2.
* :class:`RsaugError`: the base class; other subclasses (a diverged training run, a run stopped before it
  finished, a missing optional package) exit 1.

Library messages never spell command-line flags. A message that names an option wraps the Python name in
:func:`option` (``f"{option('max_unknown')} must be within 0..1"``); :attr:`RsaugError.message` shows it as
``max_unknown`` and the CLI as ``--max-unknown`` (:meth:`RsaugError.render`, with per-command renames such as
``crop`` -> ``--crop-size``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

_MARK = "\x00"
_OPTION = re.compile(_MARK + r"([A-Za-z0-9_]+)" + _MARK)


def option(name: str) -> str:
    """Mark ``name`` (a parameter or config-field name) as an option inside an error message."""
    return f"{_MARK}{name}{_MARK}"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name (for one-line errors wrapping another
    library's exception, e.g. torch's unpickling errors, which run over many lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def cli_flag(name: str) -> str:
    """The conventional flag of a parameter name: ``max_unknown`` -> ``--max-unknown``."""
    return "--" + name.replace("_", "-")


class RsaugError(Exception):
    """A problem reported as one line ``<path>: <problem>`` (``problem`` alone without a path).

    Args:
        path: The offending file or directory (or ``None`` when no file is involved).
        problem: A short, one-line description of what is wrong (options marked with :func:`option`).

    Attributes:
        exit_code: Exit status of the CLI for this error.
    """

    exit_code = 1

    def __init__(self, path: str | os.PathLike[str] | None, problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        # pickle rebuilds exceptions from ``args`` (the message) by default, which every subclass's constructor
        # would reject; rebuild without calling it, so errors raised in worker processes reach the user as is
        return (_rebuild, (type(self), self.args, self.__dict__))

    def render(self, name: Callable[[str], str] | None = None) -> str:
        """The one-line message with every marked option written by ``name`` (default: the Python name)."""
        problem = _OPTION.sub(lambda m: (name or str)(m.group(1)), self.problem)
        return f"{self.path}: {problem}" if self.path else problem

    @property
    def message(self) -> str:
        """The one-line message shown to Python users (options by their Python names)."""
        return self.render()

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[RsaugError], args: tuple[Any, ...], state: dict[str, Any]) -> RsaugError:
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


def portable_call(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)`` in a worker process, its :class:`RsaugError` detached from the exception that caused it.

    A worker's error travels back pickled. Once Dask is imported, tblib pickles exceptions with their whole
    ``__cause__``/``__context__`` chain, and some causes (rasterio's ``CPLE_*`` errors) cannot be unpickled:
    the parent would see a broken process pool instead of the one-line error. The message already names the
    problem, so the chain is dropped before the error leaves the worker.
    """
    try:
        return func(*args)
    except RsaugError as exc:
        err = exc
    err.__cause__ = None
    err.__context__ = None
    err.__suppress_context__ = True
    raise err


class InputError(RsaugError):
    """A problem with user input (exit code 2 in the CLI)."""

    exit_code = 2


class RunStopped(RsaugError):
    """A long run stopped before it finished (e.g. on SIGTERM); nothing partial was recorded as complete.

    Args:
        path: The run's directory (or ``None``).
        problem: What stopped and how to continue.
        exit_code: Exit status of the CLI (default 1; 128 + the signal number when a signal stopped the run).
    """

    def __init__(self, path: str | os.PathLike[str] | None, problem: str, exit_code: int = 1) -> None:
        super().__init__(path, problem)
        self.exit_code = exit_code

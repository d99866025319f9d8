"""Options and error handling shared by every subcommand (rasterio ``rio`` style: one module of shared bits)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from rsaug.core.errors import RsaugError, cli_flag
from rsaug.core.files import WRITE_ERRORS
from rsaug.core.progress import Reporter

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """One-line error on stderr, exit code 2 (or ``exit_code``), no traceback."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True, file=file or sys.stderr)


def flag_namer(renames: dict[str, str] | None = None) -> Callable[[str], str]:
    """How library option names appear in this command's messages: ``renames`` first, else ``--dashed-name``."""
    table = dict(renames or {})
    return lambda name: table.get(name) or cli_flag(name)


def guarded(func: F | None = None, *, renames: dict[str, str] | None = None) -> Any:
    """Turn :class:`rsaug.core.errors.RsaugError` (and missing or unreadable files, and files that cannot be
    written for lack of space, quota or permission or on a read-only file system: the :class:`OSError` of
    :data:`rsaug.core.files.WRITE_ERRORS`) raised by the library into :class:`BadInput` (one line
    ``<path>: <reason>``, the error's exit code, 2 for file errors), with option names written as this command's flags
    (``renames`` maps library names whose flag differs, e.g. ``{"crop": "--crop-size"}``). Path arguments are
    declared ``readable=False`` so that click's own multi-line usage error does not pre-empt this one-line error.
    Use as ``@guarded`` or ``@guarded(renames={...})``."""
    if func is None:
        return functools.partial(guarded, renames=renames)
    namer = flag_namer(renames)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RsaugError as exc:
            raise BadInput(exc.render(namer), exit_code=exc.exit_code) from None
        except FileNotFoundError as exc:
            raise BadInput(f"{exc.filename}: file not found") from None
        except OSError as exc:
            reason = WRITE_ERRORS.get(exc.errno or 0) or (
                "permission denied" if isinstance(exc, PermissionError) else None
            )
            if reason is None:
                raise
            raise BadInput(f"{exc.filename}: {reason}" if exc.filename is not None else reason) from None

    return wrapper  # type: ignore[return-value]


seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same result."
)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True, default=False, help="No progress bar and no summary (errors are still printed)."
)
device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'.",
)

scheduler_option = click.option(
    "--scheduler",
    default=None,
    show_default="this machine's own pool",
    metavar="ADDRESS|local:N",
    help="Run the work units on a Dask cluster: a scheduler address (tcp://host:8786; the workers must see the "
    "input and output paths at the same paths) or local:N for a local cluster of N worker processes. The result "
    "is the same as without it; --resume continues after the client or a worker died.",
)


def reporter(quiet: bool) -> Reporter:
    """The library :class:`~rsaug.core.progress.Reporter` of a command: bars and messages unless ``--quiet``."""
    return Reporter(bars=not quiet, message=None if quiet else click.echo)

"""Options and error handling shared by every subcommand (rasterio ``rio`` style: one module of shared bits)."""
from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from rsaug.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """One-line error on stderr, exit code 2, no traceback."""

    exit_code = 2

    def show(self, file: Any = None) -> None:  # noqa: D102
        click.echo(f"Error: {self.format_message()}", err=True, file=file or sys.stderr)


def guarded(func: F) -> F:
    """Turn :class:`rsaug.errors.InputError` (and missing or unreadable files) raised by the library into
    :class:`BadInput`. Path arguments are declared ``readable=False`` so that click's own multi-line usage error
    does not pre-empt this one-line error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InputError as exc:
            raise BadInput(exc.message) from None
        except FileNotFoundError as exc:
            raise BadInput(f"{exc.filename}: file not found") from None
        except PermissionError as exc:
            raise BadInput(f"{exc.filename}: permission denied") from None

    return wrapper  # type: ignore[return-value]


seed_option = click.option("--seed", type=int, default=0, show_default=True,
                           help="Random seed; the same seed gives the same result.")
quiet_option = click.option("--quiet", "-q", is_flag=True, default=False,
                            help="No progress bar and no summary (errors are still printed).")
device_option = click.option("--device", default="auto", show_default=True,
                             help="'auto' (cuda if available, else cpu), 'cpu', 'cuda' or 'cuda:N'.")

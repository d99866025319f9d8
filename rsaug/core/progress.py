"""The one way long-running library functions report what they do: a :class:`Reporter`.

Library functions take ``reporter: Reporter | None`` and never print. ``None`` (or :data:`SILENT`) means no
bars and no messages; the CLI builds ``Reporter(bars=not quiet, message=click.echo)``, so ``--quiet`` is one
switch for every command. Bars are tqdm bars (disabled ones cost nothing), messages are one-line strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


@dataclass(frozen=True)
class Reporter:
    """Where progress goes.

    Attributes:
        bars: Show tqdm progress bars (on stderr).
        message: Receives status lines (``None``: dropped).
    """

    bars: bool = False
    message: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        """Send one status line to :attr:`message` (if any)."""
        if self.message is not None:
            self.message(text)

    def bar(
        self, total: int | None = None, desc: str | None = None, unit: str = "it", leave: bool = True, **kwargs: Any
    ) -> tqdm:
        """A tqdm bar, disabled unless :attr:`bars` (use it as a context manager or call ``close()``)."""
        return tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=not self.bars, **kwargs)

    def iterate(
        self,
        items: Iterable[T],
        total: int | None = None,
        desc: str | None = None,
        unit: str = "it",
        leave: bool = True,
    ) -> Iterator[T]:
        """Iterate over ``items`` with a bar (see :meth:`bar`)."""
        with self.bar(total=total, desc=desc, unit=unit, leave=leave) as b:
            for item in items:
                yield item
                b.update(1)


#: Reports nothing.
SILENT = Reporter()


def reporter_or_silent(reporter: Reporter | None) -> Reporter:
    """``reporter`` itself, or :data:`SILENT` for ``None``."""
    return reporter if reporter is not None else SILENT

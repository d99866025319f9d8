"""Device selection, seeding, quiet blocks and graceful stops on SIGINT / SIGTERM."""

from __future__ import annotations

import contextlib
import logging
import random
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType

import numpy as np
import torch

from rsaug.core.errors import InputError


def select_device(name: str = "auto") -> torch.device:
    """Pick a torch device: ``auto`` means CUDA when available, else CPU.

    Raises:
        InputError: If CUDA is requested but not available, or the name is invalid.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(None, f"invalid device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(None, f"device {name!r} requested but CUDA is not available")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def quiet(
    *categories: type[Warning], messages: Sequence[str] = (), modules: Sequence[str] = (), loggers: Sequence[str] = ()
) -> Iterator[None]:
    """Silence expected warnings and informational log lines for the duration of a block (errors still show).

    Args:
        categories: Warning classes to ignore (e.g. ``RuntimeWarning``, rasterio's ``NotGeoreferencedWarning``).
        messages: Regular expressions of warning messages to ignore.
        modules: Regular expressions of modules whose warnings are ignored.
        loggers: Logger names raised to ``ERROR`` level (restored afterwards).
    """
    logs = [logging.getLogger(n) for n in loggers]
    levels = [lg.level for lg in logs]
    try:
        for lg in logs:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            for cat in categories:
                warnings.simplefilter("ignore", cat)
            for msg in messages:
                warnings.filterwarnings("ignore", message=msg)
            for mod in modules:
                warnings.filterwarnings("ignore", module=mod)
            yield
    finally:
        for lg, lv in zip(logs, levels):
            lg.setLevel(lv)


class StopRequest:
    """Set when SIGINT or SIGTERM arrived inside :func:`stop_on_signals`; long loops poll it between steps.

    Attributes:
        signum: The signal that asked to stop (``None`` while none did).
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        """Whether a stop was asked for."""
        return self.signum is not None

    @property
    def name(self) -> str:
        """``SIGINT`` / ``SIGTERM`` (empty while no stop was asked for)."""
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by the signal: 128 + its number (130, 143)."""
        return 128 + (self.signum or 0)


_ACTIVE: list[StopRequest] = []


def current_stop() -> StopRequest | None:
    """The :class:`StopRequest` of the innermost active :func:`stop_on_signals` block, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a polite request to stop for the duration of a block.

    The first signal only sets :attr:`StopRequest.signum`; the loop that owns the block saves a resumable state
    at its next step boundary and stops. A second SIGINT raises ``KeyboardInterrupt`` at once (for a user who
    does not want to wait). Nested blocks share the outer request. The previous handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) the request is never set.

    Yields:
        The :class:`StopRequest` to poll.
    """
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    req = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield req
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if req.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        req.signum = signum

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in previous:
        signal.signal(s, handler)
    _ACTIVE.append(req)
    try:
        yield req
    finally:
        _ACTIVE.remove(req)
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)

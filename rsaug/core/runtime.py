"""Device selection and seeding."""

from __future__ import annotations

import contextlib
import logging
import random
import warnings
from collections.abc import Iterator, Sequence

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

"""Device selection and seeding."""
from __future__ import annotations

import random

import numpy as np
import torch

from rsaug.errors import InputError


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

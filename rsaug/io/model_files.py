"""The one way rsaug reads a model file (GAN checkpoints, generator files, ``segmenter.pt``).

:func:`read_model_file` is ``torch.load(weights_only=True, mmap=True)``: PyTorch's restricted unpickler admits
tensors and plain Python values only (plus :data:`SAFE_NUMPY_GLOBALS`), so an untrusted file cannot run code, and
its tensors are memory-mapped instead of read into memory. A refused or unreadable file is a one-line
:class:`~rsaug.core.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsaug.core.errors import InputError

SAFE_NUMPY_GLOBALS: list[Any] = [
    np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]
"""The only non-PyTorch globals the unpickler admits: constructors of a NumPy array of plain numbers
(version-1 GAN checkpoints store the NumPy RNG state as a ``uint32`` array). None of them can call other code: an
array's items are unpickled by the same restricted unpickler."""


def read_model_file(
    path: str | os.PathLike[str], what: str, map_location: Any = "cpu", trust_hint: str | None = None
) -> Any:
    """The object ``torch.save`` wrote to ``path``, read without running code from the file.

    Args:
        path: The file.
        what: Its kind, for the error message (e.g. ``"checkpoint"``, ``"segmenter file"``).
        map_location: Where tensors go (``torch.load``'s argument).
        trust_hint: Appended to the refusal of a file holding Python objects (e.g. how a user who trusts the
            file can convert it).

    Raises:
        InputError: ``refusing to load`` for a file holding Python objects other than tensors and plain values
            (naming them), ``cannot read <what>`` for a corrupt or foreign file.
    """
    p = Path(path)
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
            return torch.load(p, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        try:
            found = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(p)) or "unknown objects"
        except Exception:
            found = "unknown objects"
        hint = f"; {trust_hint}" if trust_hint else ""
        raise InputError(
            p, f"refusing to load: the file holds Python objects that could run code ({found}){hint}"
        ) from None
    except Exception as exc:  # corrupt / foreign file
        raise InputError(p, f"cannot read {what}: {type(exc).__name__}: {exc}") from None

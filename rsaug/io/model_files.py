"""The one way rsaug reads a model file (GAN checkpoints, generator files, ``segmenter.pt``).

:func:`read_model_file` is ``torch.load(weights_only=True, mmap=True)``: PyTorch's restricted unpickler admits
tensors and plain Python values only (plus :data:`SAFE_NUMPY_GLOBALS`), so an untrusted file cannot run code, and
its tensors are memory-mapped instead of read into memory. A refused or unreadable file is a one-line
:class:`~rsaug.core.errors.InputError` naming the file.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsaug.core.errors import InputError, first_line

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
        InputError: ``<what> not found``; ``refusing to load`` for a file holding Python objects other than
            tensors and plain values (naming them); ``cannot read <what>`` for a corrupt or foreign file
            (anything but the zip archive ``torch.save`` writes, or one whose data cannot be unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} not found")
    if not zipfile.is_zipfile(p):  # torch.save writes zip archives (since PyTorch 1.6); mmap needs one
        raise InputError(
            p, f"cannot read {what}: not the zip archive torch.save writes (another format, or PyTorch < 1.6)"
        )
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
            return torch.load(p, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        try:
            with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):  # only what is still refused
                found = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(p))
        except Exception:
            found = []
        if not found:  # refused for another reason: a damaged pickle
            raise InputError(p, f"cannot read {what}: damaged data: {first_line(exc)}") from None
        hint = f"; {trust_hint}" if trust_hint else ""
        raise InputError(
            p, f"refusing to load: the file holds Python objects that could run code ({', '.join(found)}){hint}"
        ) from None
    except Exception as exc:  # corrupt / foreign file
        raise InputError(p, f"cannot read {what}: {type(exc).__name__}: {first_line(exc)}") from None

"""The checkpoint file of a training run: its format, how it is written, found and read.

Loading never executes code from the file. A checkpoint is a ``torch.save`` zip of plain Python containers,
numbers, strings and tensors only, read with ``torch.load(weights_only=True, mmap=True)``: PyTorch's restricted
unpickler refuses every other Python object (a file planting ``os.system`` in a ``__reduce__`` gets a one-line
error and runs nothing), and tensors are memory-mapped rather than read into RAM. The only extra types admitted
are NumPy's array and dtype constructors (:data:`SAFE_NUMPY_GLOBALS`), which version-1 files need for the NumPy
RNG state; version 2 stores that state as plain integers. Files that still do not load safely (written by other
tools, or by hand) can be converted by a user who trusts them: :func:`convert_checkpoint` /
``rsaug convert-checkpoint --trust OLD NEW``.

A checkpoint is a ``torch.save`` dictionary tagged ``format = "rsaug-checkpoint"`` (:data:`CHECKPOINT_FORMAT`,
version :data:`CHECKPOINT_VERSION`) holding the step, the three configs, the class scheme, the normalisation,
the tile set's description, every network's and optimiser's state, the scheduler and RNG states and the log
columns (:func:`checkpoint_state` lists the keys). A run keeps ``RUN/checkpoints/step_XXXXXX.ckpt`` (the newest
few) and ``RUN/checkpoints/last.ckpt`` (a hard link to, or copy of, the newest) (:func:`save_checkpoint`).
:func:`load_checkpoint` reads one back, :func:`find_checkpoint` finds ``last.ckpt`` in a run directory.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rsaug import __version__
from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.core.files import atomic_path
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig
from rsaug.gan.training_state import plain_rng_state
from rsaug.io.normalization import Normalization
from rsaug.io.tileset import TileSet

CHECKPOINT_FORMAT = "rsaug-checkpoint"
CHECKPOINT_VERSION = 2
"""2: RNG states as plain values (loads with ``weights_only=True`` and no extra globals); 1: NumPy RNG state as an
array (still loads, through :data:`SAFE_NUMPY_GLOBALS`)."""

SAFE_NUMPY_GLOBALS: list[Any] = [
    np._core.multiarray._reconstruct,  # type: ignore[attr-defined]
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
]
"""The only non-PyTorch globals the checkpoint unpickler admits: constructors of a NumPy array of plain numbers
(version-1 checkpoints store the NumPy RNG state as a ``uint32`` array). None of them can call other code: an
array's items are unpickled by the same restricted unpickler."""


def _state_dict(obj: Any) -> dict[str, Any] | None:
    return None if obj is None else obj.state_dict()


def checkpoint_state(
    *,
    step: int,
    total_steps: int,
    train_config: TrainConfig,
    model_config: ModelConfig,
    loss_config: LossConfig,
    scheme: ClassScheme,
    normalization: Normalization,
    tiles: TileSet,
    G: nn.Module,
    G_ema: nn.Module,
    D: nn.Module | None,
    C: nn.Module | None,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer | None,
    opt_C: torch.optim.Optimizer | None,
    schedulers: dict[str, Any],
    rng: dict[str, Any],
    log_columns: list[str],
    grad_scaler: Any = None,
) -> dict[str, Any]:
    """The checkpoint dictionary of a training run at ``step`` (the file format; keys in file order).

    Args:
        step: Completed steps.
        total_steps: Steps of the whole run.
        train_config: Training options.
        model_config: Architecture.
        loss_config: Loss weights.
        scheme: Class scheme of the masks.
        normalization: Map between raster values and ``[-1, 1]``.
        tiles: The training tile set (its description and resolved path are stored).
        G: Generator.
        G_ema: Exponential moving average of the generator.
        D: Discriminator (``None`` without one).
        C: Conductor (``None`` without one).
        opt_G: Generator optimiser.
        opt_D: Discriminator optimiser (``None`` without a discriminator).
        opt_C: Conductor optimiser (``None`` unless the conductor is trained).
        schedulers: Learning-rate schedulers by network name (``G``, ``D``, ``C``).
        rng: RNG states (:func:`rsaug.gan.training_state.rng_state`).
        log_columns: Columns of the run's ``log.csv``.
        grad_scaler: Mixed-precision gradient scaler (``None`` in 32-bit training).

    Returns:
        The dictionary :func:`save_checkpoint` writes.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "rsaug_version": __version__,
        "step": step,
        "total_steps": total_steps,
        "train_config": train_config.to_dict(),
        "model_config": model_config.to_dict(),
        "loss_config": loss_config.to_dict(),
        "scheme": scheme.to_dict(),
        "normalization": normalization.to_dict(),
        "tileset": tiles.description,
        "tileset_path": str(tiles.root.resolve()),
        "G": G.state_dict(),
        "G_ema": G_ema.state_dict(),
        "D": _state_dict(D),
        "C": _state_dict(C),
        "opt_G": opt_G.state_dict(),
        "opt_D": _state_dict(opt_D),
        "opt_C": _state_dict(opt_C),
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": plain_rng_state(rng),
        "log_columns": log_columns,
        "grad_scaler": _state_dict(grad_scaler),
    }


def save_checkpoint(state: dict[str, Any], ckpt_dir: Path, step: int, keep: int) -> Path:
    """Write ``state`` as ``ckpt_dir/step_XXXXXX.ckpt``, point ``last.ckpt`` at it and prune old step files.

    Both files are written atomically; ``last.ckpt`` is a hard link to the step file (a copy where links are
    not supported).

    Args:
        state: A checkpoint dictionary (:func:`checkpoint_state`).
        ckpt_dir: The run's ``checkpoints`` directory.
        step: The step in the file name.
        keep: Keep the newest this many ``step_*.ckpt`` files (0 = keep all).

    Returns:
        The path of ``last.ckpt``.
    """
    last = ckpt_dir / "last.ckpt"
    step_path = ckpt_dir / f"step_{step:06d}.ckpt"
    with atomic_path(step_path) as tmp:
        torch.save(state, tmp)
    with atomic_path(last) as tmp:
        try:
            os.link(step_path, tmp)
        except OSError:
            shutil.copyfile(step_path, tmp)
    if keep > 0:
        old = sorted(ckpt_dir.glob("step_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))[:-keep]
        for p in old:
            p.unlink()
    return last


def find_checkpoint(run: str | os.PathLike[str]) -> Path:
    """``RUN/checkpoints/last.ckpt`` of a run directory (or ``run`` itself if it is a file).

    Raises:
        InputError: If there is none.
    """
    p = Path(run)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise InputError(p, "no checkpoint to resume from (checkpoints/last.ckpt missing)")
    return last


def _trust_hint(p: Path) -> str:
    return f"if you trust this file, convert it with `rsaug convert-checkpoint --trust {p} NEW.ckpt`"


def _read_safely(p: Path, map_location: Any, what: str) -> Any:
    """``torch.load(weights_only=True, mmap=True)`` with :data:`SAFE_NUMPY_GLOBALS` admitted, the one way rsaug
    reads a model file; a refused or unreadable file is a one-line :class:`InputError` (``what``: its kind)."""
    try:
        with torch.serialization.safe_globals(SAFE_NUMPY_GLOBALS):
            return torch.load(p, map_location=map_location, weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        try:
            found = ", ".join(torch.serialization.get_unsafe_globals_in_checkpoint(p)) or "unknown objects"
        except Exception:
            found = "unknown objects"
        raise InputError(
            p, f"refusing to load: the file holds Python objects that could run code ({found}); {_trust_hint(p)}"
        ) from None
    except Exception as exc:  # corrupt / foreign file
        raise InputError(p, f"cannot read {what}: {type(exc).__name__}: {exc}") from None


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an rsaug checkpoint dictionary without executing anything from the file.

    The file is read with ``torch.load(weights_only=True, mmap=True)`` (tensors memory-mapped, only plain types,
    tensors and :data:`SAFE_NUMPY_GLOBALS` admitted), so a hostile file can neither run code nor make rsaug read
    more than the file holds into memory.

    Raises:
        InputError: If the file is missing, unreadable, holds objects that could run code (the message names
            them and the opt-in conversion), or is not an rsaug checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "checkpoint not found")
    ckpt = _read_safely(p, map_location, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(p, "not an rsaug checkpoint")
    version = ckpt.get("version", 1)  # generator-only files written by hand may omit it
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise InputError(
            p, f"checkpoint format version {version!r} is newer than this rsaug reads ({CHECKPOINT_VERSION})"
        )
    return ckpt


def load_state_dict_file(path: str | os.PathLike[str], key: str | None = None) -> Any:
    """A state dict from a file, read as safely as :func:`load_checkpoint`: an rsaug checkpoint's entry ``key``,
    or, for any other file, its whole content (a plain ``torch.save`` of a state dict).

    Raises:
        InputError: If the file is missing, unreadable or holds objects that could run code.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    obj = _read_safely(p, "cpu", "file")
    if key is not None and isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj.get(key)
    return obj


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, trust: bool) -> Path:
    """Rewrite a checkpoint that does not load safely (an older or foreign-written rsaug checkpoint) in the
    current format, for a file the user trusts.

    This is the one place rsaug unpickles a file without restrictions, so it refuses to run unless ``trust`` is
    given explicitly. The result is checked to load through :func:`load_checkpoint`.

    Args:
        src: The trusted checkpoint.
        dst: Where to write the converted checkpoint (must not exist).
        trust: The user vouches for ``src`` (``--trust``).

    Returns:
        ``dst``.

    Raises:
        InputError: Without ``trust``, if ``src`` is missing or not an rsaug checkpoint, or ``dst`` exists.
    """
    s, d = Path(src), Path(dst)
    if not trust:
        raise InputError(
            s, f"converting unpickles the file without restrictions; pass {option('trust')} if you trust it"
        )
    if not s.is_file():
        raise InputError(s, "checkpoint not found")
    if d.exists():
        raise InputError(d, "output file already exists")
    try:
        ckpt = torch.load(s, map_location="cpu", weights_only=False)  # the user vouched for the file
    except Exception as exc:
        raise InputError(s, f"cannot read checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(s, "not an rsaug checkpoint")
    if isinstance(ckpt.get("rng"), dict):
        ckpt["rng"] = plain_rng_state(ckpt["rng"])
    ckpt = _plain(ckpt)
    ckpt["version"] = CHECKPOINT_VERSION
    with atomic_path(d) as tmp:
        torch.save(ckpt, tmp)
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
        if unsafe:
            raise InputError(
                s, f"cannot convert: the checkpoint holds objects outside the safe format ({', '.join(unsafe)})"
            )
    return d


def _plain(obj: Any) -> Any:
    """``obj`` with paths as strings and NumPy values as tensors / Python numbers (containers recursively);
    anything else is kept as is (and then refused by the safety check of :func:`convert_checkpoint`)."""
    if type(obj) in (dict, OrderedDict):
        return type(obj)((k, _plain(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "SAFE_NUMPY_GLOBALS",
    "checkpoint_state",
    "convert_checkpoint",
    "find_checkpoint",
    "load_checkpoint",
    "load_state_dict_file",
    "save_checkpoint",
]

"""The checkpoint file of a training run: its format, how it is written, found and read.

A checkpoint is a ``torch.save`` dictionary tagged ``format = "rsaug-checkpoint"`` (:data:`CHECKPOINT_FORMAT`,
version :data:`CHECKPOINT_VERSION`) holding the step, the three configs, the class scheme, the normalisation,
the tile set's description, every network's and optimiser's state, the scheduler and RNG states and the log
columns (:func:`checkpoint_state` lists the keys). A run keeps ``RUN/checkpoints/step_XXXXXX.ckpt`` (the newest
few) and ``RUN/checkpoints/last.ckpt`` (a hard link to, or copy of, the newest) (:func:`save_checkpoint`).
:func:`load_checkpoint` reads one back, :func:`find_checkpoint` finds ``last.ckpt`` in a run directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rsaug import __version__
from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError
from rsaug.core.files import atomic_path
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig
from rsaug.io.normalization import Normalization
from rsaug.io.tileset import TileSet

CHECKPOINT_FORMAT = "rsaug-checkpoint"
CHECKPOINT_VERSION = 1


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
        "rng": rng,
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


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an rsaug checkpoint dictionary.

    Raises:
        InputError: If the file is missing or not an rsaug checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "checkpoint not found")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt / foreign file
        raise InputError(p, f"cannot read checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(p, "not an rsaug checkpoint")
    return ckpt


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "checkpoint_state",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

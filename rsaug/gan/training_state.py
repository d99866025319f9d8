"""Helpers that act on the state of a training run between steps: seeds and RNG snapshots, the learning-rate
schedule, the generator's moving average, BatchNorm statistics and frozen parameters.

Exact resume rests on :func:`seed_for`: every random draw of step ``s`` comes from a generator seeded by
``seed_for(seed, purpose, s, rank)``, so the draws of a step do not depend on what ran before it.
"""

from __future__ import annotations

import random
from typing import Any, Protocol, TypeGuard

import numpy as np
import torch
from torch import nn


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from ``parts`` (e.g. ``(run seed, purpose, step, rank)``) by NumPy's SeedSequence."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def rng_state() -> dict[str, Any]:
    """Snapshot of the torch, NumPy, Python (and CUDA, when available) global RNG states, as plain values and
    tensors only (:func:`plain_rng_state`), so checkpoints holding it load with ``weights_only=True``."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return plain_rng_state(state)


def plain_rng_state(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the NumPy RNG state's key array as a list of Python ints (the only non-plain part of
    :func:`rng_state`'s snapshot; idempotent)."""
    out = dict(state)
    np_state = state.get("numpy")
    if isinstance(np_state, (tuple, list)) and len(np_state) == 5:
        name, key, pos, has_gauss, cached = np_state
        out["numpy"] = (str(name), [int(k) for k in np.asarray(key).tolist()], int(pos), int(has_gauss), float(cached))
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore a snapshot of :func:`rng_state` (the CUDA part only where CUDA is available)."""
    torch.set_rng_state(state["torch"])
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def set_requires_grad(module: nn.Module | None, flag: bool) -> None:
    """Switch gradients of every parameter of ``module`` on or off (``None`` is ignored)."""
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """Learning-rate multiplier at ``step``: 1 until ``decay_start * total``, then linear to 0 at ``total``."""
    start = round(decay_start * total)
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


class _RunningStats(Protocol):
    """A module with BatchNorm-style running statistics (``nn.BatchNorm*`` or a fused class-modulated norm)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    momentum: float | None


def _has_running_stats(m: nn.Module) -> TypeGuard[_RunningStats]:
    return (
        isinstance(getattr(m, "running_mean", None), torch.Tensor)
        and isinstance(getattr(m, "running_var", None), torch.Tensor)
        and hasattr(m, "momentum")
    )


def _running_stat_modules(module: nn.Module) -> list[_RunningStats]:
    return [m for m in module.modules() if _has_running_stats(m)]


@torch.no_grad()
def refresh_batchnorm(G: nn.Module, batches: list[tuple[torch.Tensor, Any]]) -> None:
    """Recompute the BatchNorm running statistics of ``G`` as exact averages over ``batches``.

    Works for ``nn.BatchNorm*`` / ``SyncBatchNorm`` and for the fused class-modulated norms of
    :mod:`rsaug.gan.networks.modulation` (any module with ``running_mean``, ``running_var`` and ``momentum``):
    the statistics are reset and batch ``i`` is folded in with momentum ``1 / (i + 1)``, giving the plain mean.

    Args:
        G: Generator (typically the EMA copy); left in eval mode.
        batches: ``(labels, noise)`` pairs to run through ``G`` in train mode.
    """
    mods = _running_stat_modules(G)
    if not mods or not batches:
        G.eval()
        return
    momenta = [m.momentum for m in mods]
    for m in mods:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        tracked = getattr(m, "num_batches_tracked", None)
        if isinstance(tracked, torch.Tensor):
            tracked.zero_()
    G.train()
    for i, (labels, noise) in enumerate(batches):
        for m in mods:
            m.momentum = 1.0 / (i + 1)
        G(labels, noise)
    for m, mom in zip(mods, momenta):
        m.momentum = mom
    G.eval()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters (buffers are refreshed separately)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1.0 - decay)


__all__ = [
    "lr_factor",
    "plain_rng_state",
    "refresh_batchnorm",
    "rng_state",
    "seed_for",
    "set_requires_grad",
    "set_rng_state",
    "update_ema",
]

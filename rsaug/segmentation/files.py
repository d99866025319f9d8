"""Saving and loading a trained segmenter (``segmenter.pt``: weights, normalisation, protocol, class scheme).

Loading never executes code from the file nor reads its tensors into memory at once:
:func:`rsaug.io.model_files.read_model_file` (``torch.load(weights_only=True, mmap=True)``).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from rsaug import __version__
from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError
from rsaug.core.files import atomic_path
from rsaug.io.model_files import read_model_file
from rsaug.io.tileset import TileSet
from rsaug.segmentation.config import SegmenterConfig
from rsaug.segmentation.data import SegmenterNormalization
from rsaug.segmentation.training import TrainedSegmenter, build_task

SEGMENTER_FORMAT = "rsaug-segmenter"


def save_segmenter(
    seg: TrainedSegmenter,
    path: str | os.PathLike[str],
    scheme: ClassScheme,
    segmenter_config: SegmenterConfig,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a :class:`TrainedSegmenter` (weights, normalisation, protocol) atomically."""
    path = Path(path)
    state = {
        "format": SEGMENTER_FORMAT,
        "rsaug_version": __version__,
        "state_dict": {k: v.detach().cpu() for k, v in seg.model.state_dict().items()},
        "norm": asdict(seg.norm),
        "num_classes": int(seg.num_classes),
        "in_channels": len(seg.norm.low),
        "segmenter_config": asdict(segmenter_config),
        "scheme": scheme.to_dict(),
        "info": {k: v for k, v in (seg.info or {}).items() if k != "loss_curve"},
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_segmenter(path: str | os.PathLike[str], device: torch.device) -> tuple[TrainedSegmenter, dict[str, Any]]:
    """Load a file written by :func:`save_segmenter`; returns the segmenter and the raw state.

    Raises:
        InputError: If the file is missing, unreadable or not an rsaug segmenter.
    """
    p = Path(path)
    state = read_model_file(p, "segmenter file")
    if not isinstance(state, dict) or state.get("format") != SEGMENTER_FORMAT:
        raise InputError(p, "not an rsaug segmenter file (write one with `rsaug evaluate`, it saves segmenter.pt)")
    try:
        cfg = SegmenterConfig(**state["segmenter_config"])
        cfg.validate()
        num_classes, in_channels = int(state["num_classes"]), int(state["in_channels"])
        if num_classes < 1 or in_channels < 1:
            raise ValueError(f"{num_classes} classes, {in_channels} bands")
        norm = SegmenterNormalization(**state["norm"])
        info = dict(state.get("info", {}))
        model = build_task(num_classes, in_channels, cfg).model
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, InputError) as exc:
        problem = exc.problem if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
        raise InputError(p, f"damaged segmenter file: {problem}") from None
    try:
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(p, f"segmenter weights do not match its stored config: {exc}") from None
    model.to(device).eval()
    seg = TrainedSegmenter(model=model, norm=norm, num_classes=num_classes, device=device, info=info)
    return seg, state


def check_segmenter_state(state: dict[str, Any], ts: TileSet, path: str | os.PathLike[str]) -> None:
    """Check that a loaded segmenter file fits a tile set (same classes and band count).

    Raises:
        InputError: Naming the segmenter file and the mismatch.
    """
    try:
        stored = ClassScheme.from_dict(state["scheme"], path)
    except (KeyError, TypeError, ValueError):
        raise InputError(path, "segmenter file has no class scheme") from None
    if not stored.same_classes(ts.scheme):
        raise InputError(
            path,
            f"segmenter was trained on class scheme {stored.name!r} ({stored.num_classes} classes), tile set "
            f"{ts.root} uses {ts.scheme.name!r} ({ts.scheme.num_classes} classes)",
        )
    if int(state.get("in_channels", -1)) != ts.bands:
        raise InputError(path, f"segmenter takes {state.get('in_channels')} bands, tile set {ts.root} has {ts.bands}")

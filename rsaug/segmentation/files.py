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
    if not p.is_file():
        raise InputError(p, "segmenter file not found")
    state = read_model_file(p, "segmenter file")
    if not isinstance(state, dict) or state.get("format") != SEGMENTER_FORMAT:
        raise InputError(p, "not an rsaug segmenter file (write one with `rsaug evaluate`, it saves segmenter.pt)")
    try:
        cfg = SegmenterConfig(**state["segmenter_config"])
        num_classes, in_channels = int(state["num_classes"]), int(state["in_channels"])
        norm = SegmenterNormalization(**state["norm"])
        info = dict(state.get("info", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(p, f"damaged segmenter file: {type(exc).__name__}: {exc}") from None
    model = build_task(num_classes, in_channels, cfg).model
    try:
        model.load_state_dict(state["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(p, f"segmenter weights do not match its stored config: {exc}") from None
    model.to(device).eval()
    seg = TrainedSegmenter(model=model, norm=norm, num_classes=num_classes, device=device, info=info)
    return seg, state

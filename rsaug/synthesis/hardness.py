"""Per-class hardness for hardness-aware sampling (``rsaug synthesize --hard-classes-from SOURCE``).

:func:`class_iou_from` reads the per-class IoU of a segmenter trained on real data only, from either

* a ``segmenter.pt`` (what ``rsaug evaluate`` writes): the segmenter is run on the real ``val`` split of the tile
  set and its per-class IoU computed (:func:`rsaug.segmentation.segmentation_scores`), or
* a benchmark ``report.json`` (``rsaug benchmark-augmentation``): the mean per-class IoU of the ``real`` arm
  (``summary.arms.real.iou_mean``; else the mean over the ``real`` runs).

The planner (:func:`rsaug.synthesis.plan_synthesis`, mode ``hard``) turns the IoUs into per-class hardness
``1 - IoU`` and scores every mask by ``sum_k share_mk * (1 - IoU_k)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsaug.core.errors import InputError
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import select_device
from rsaug.io.tileset import TileSet
from rsaug.segmentation import (
    TrainedSegmenter,
    check_segmenter_state,
    load_segmenter,
    load_tiles,
    segmentation_scores,
)


@dataclass
class ClassIoU:
    """Per-class IoU of a real-only segmenter.

    Attributes:
        iou: One IoU per class (internal order); ``None`` where unknown.
        source: The file it was read from.
        kind: ``segmenter`` (measured here on ``split``) or ``benchmark-report``.
        split: Split of the tile set it was measured on (``segmenter``), else ``None``.
    """

    iou: list[float | None]
    source: str
    kind: str
    split: str | None = None


def segmenter_iou(seg: TrainedSegmenter, ts: TileSet, split: str = "val", batch_size: int = 8) -> list[float | None]:
    """Per-class IoU of ``seg`` on a split of ``ts`` (``None`` for classes neither present nor predicted)."""
    tiles = load_tiles(ts, [split], split)
    cm = seg.confusion(tiles, batch_size=batch_size)
    iou = segmentation_scores(cm, ts.scheme.names)["per_class_iou"]
    return [None if v is None or not np.isfinite(v) else float(v) for v in iou]


def _iou_from_report(data: dict[str, Any], path: Path, ts: TileSet) -> list[float | None]:
    """The ``real`` arm's per-class IoU from a benchmark report."""
    names = data.get("class_names")
    if names is None:
        raise InputError(path, "not a benchmark report (no class_names)")
    if list(names) != ts.scheme.names:
        raise InputError(path, f"benchmark report classes differ from tile set {ts.root} ({ts.scheme.name!r})")
    arm = (data.get("summary") or {}).get("arms", {}).get("real")
    values = arm.get("iou_mean") if isinstance(arm, dict) else None
    if values is None:
        runs = [r["scores"]["iou"] for r in data.get("runs", []) if r.get("arm") == "real" and "scores" in r]
        if not runs:
            raise InputError(path, "benchmark report has no 'real' arm with per-class IoU")
        arr = np.array([[np.nan if v is None else v for v in r] for r in runs], dtype=np.float64)
        with np.errstate(all="ignore"):
            values = np.nanmean(arr, axis=0).tolist() if np.isfinite(arr).any() else [None] * len(names)
    if len(values) != len(names):
        raise InputError(path, f"benchmark report has {len(values)} IoUs for {len(names)} classes")
    out: list[float | None] = []
    for v in values:
        out.append(None if v is None or not np.isfinite(float(v)) else float(v))
    return out


def class_iou_from(
    source: str | os.PathLike[str],
    tiles: TileSet,
    *,
    split: str = "val",
    device: str | torch.device = "cpu",
    reporter: Reporter | None = None,
) -> ClassIoU:
    """Per-class IoU of a real-only segmenter, from a segmenter file or a benchmark report.

    Args:
        source: ``segmenter.pt`` (``rsaug evaluate``) or ``report.json`` (``rsaug benchmark-augmentation``).
        tiles: The real tile set (its ``split`` is segmented when ``source`` is a segmenter file).
        split: Split the segmenter is evaluated on (never ``test``: that would tune on test data).
        device: Torch device for the segmenter.
        reporter: Status messages (``None``: silent).

    Raises:
        InputError: Missing or unreadable file, neither a segmenter nor a benchmark report, another class scheme
            or band count, a report without a ``real`` arm.
    """
    path = Path(source)
    if not path.is_file():
        raise InputError(path, "hardness source not found (give a segmenter.pt or a benchmark report.json)")
    with open(path, "rb") as f:
        head = f.read(1).lstrip()
    if head in (b"{", b"["):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(path, f"cannot read benchmark report: {exc}") from None
        if not isinstance(data, dict):
            raise InputError(path, "not a benchmark report")
        return ClassIoU(_iou_from_report(data, path, tiles), str(path), "benchmark-report")
    dev = device if isinstance(device, torch.device) else select_device(str(device))
    seg, state = load_segmenter(path, dev)
    check_segmenter_state(state, tiles, path)
    reporter_or_silent(reporter).say(f"Measuring the per-class IoU of {path} on the {split!r} split of {tiles.root}")
    return ClassIoU(segmenter_iou(seg, tiles, split), str(path), "segmenter", split)

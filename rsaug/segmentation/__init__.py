"""The downstream segmenter: a TorchGeo U-Net, its data and normalisation, training, scores, save/load.

Shared by ``rsaug evaluate`` (segmentation fidelity) and ``rsaug benchmark-augmentation``.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""
from __future__ import annotations

from rsaug.segmentation.config import (
    PRESETS,
    SegmenterConfig,
    preset,
)
from rsaug.segmentation.data import (
    TileArrays,
    open_tileset,
    load_tiles,
    Normalization,
    classic_augmentation,
    DrawPlan,
    make_plan,
    PlanDataset,
)
from rsaug.segmentation.scores import (
    confusion_matrix,
    segmentation_scores,
    scores,
)
from rsaug.segmentation.training import (
    build_task,
    TrainedSegmenter,
    train_segmenter,
)
from rsaug.segmentation.files import (
    SEGMENTER_FORMAT,
    save_segmenter,
    load_segmenter,
)

__all__ = [
    "DrawPlan",
    "Normalization",
    "PRESETS",
    "PlanDataset",
    "SEGMENTER_FORMAT",
    "SegmenterConfig",
    "TileArrays",
    "TrainedSegmenter",
    "build_task",
    "classic_augmentation",
    "confusion_matrix",
    "load_segmenter",
    "load_tiles",
    "make_plan",
    "open_tileset",
    "preset",
    "save_segmenter",
    "scores",
    "segmentation_scores",
    "train_segmenter",
]

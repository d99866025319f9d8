"""The downstream segmenter: a TorchGeo U-Net, its data and input standardisation, training, scores, save/load.

Owns: :class:`SegmenterConfig`, its presets and the convergence rule of validation curves
(:mod:`~rsaug.segmentation.config`); tiles in memory, the
segmenter's :class:`SegmenterNormalization` (former name ``Normalization``), seeded draw plans and classic
augmentation (:mod:`~rsaug.segmentation.data`); the one confusion matrix and its scores
(:mod:`~rsaug.segmentation.scores`); training (with validation curves and best-val model selection) and prediction
(:mod:`~rsaug.segmentation.training`); the
``segmenter.pt`` file (:mod:`~rsaug.segmentation.files`). Shared by ``rsaug evaluate`` (segmentation fidelity) and
``rsaug benchmark-augmentation``.

May import: :mod:`rsaug.core`, :mod:`rsaug.io` (and lazily lightning, torchgeo, albumentations).
"""

from __future__ import annotations

from rsaug.segmentation.config import (
    CONVERGENCE_GAIN,
    CONVERGENCE_TAIL,
    MIX_SCHEDULES,
    PRESETS,
    SELECT_MODES,
    MixRecipe,
    SegmenterConfig,
    converged,
    preset,
)
from rsaug.segmentation.data import (
    DrawPlan,
    Normalization,
    PlanDataset,
    SegmenterNormalization,
    TileArrays,
    classic_augmentation,
    load_tiles,
    make_plan,
    open_tileset,
)
from rsaug.segmentation.files import (
    SEGMENTER_FORMAT,
    check_segmenter_state,
    load_segmenter,
    save_segmenter,
)
from rsaug.segmentation.scores import (
    confusion_matrix,
    scores,
    segmentation_scores,
)
from rsaug.segmentation.training import (
    TrainedSegmenter,
    build_task,
    train_segmenter,
    validation_miou,
)

__all__ = [
    "CONVERGENCE_GAIN",
    "CONVERGENCE_TAIL",
    "MIX_SCHEDULES",
    "PRESETS",
    "SEGMENTER_FORMAT",
    "SELECT_MODES",
    "DrawPlan",
    "MixRecipe",
    "Normalization",
    "PlanDataset",
    "SegmenterConfig",
    "SegmenterNormalization",
    "TileArrays",
    "TrainedSegmenter",
    "build_task",
    "check_segmenter_state",
    "classic_augmentation",
    "confusion_matrix",
    "converged",
    "load_segmenter",
    "load_tiles",
    "make_plan",
    "open_tileset",
    "preset",
    "save_segmenter",
    "scores",
    "segmentation_scores",
    "train_segmenter",
    "validation_miou",
]

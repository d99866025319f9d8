"""Synthesis (``rsaug synthesize``, ``rsaug filter``): the planner, synthetic tile sets, whole scenes, recipes.

Modules: :mod:`~rsaug.synthesis.planner` (:func:`plan_synthesis`: which masks, how many samples; plain, rare,
vary and hardness-aware modes), :mod:`~rsaug.synthesis.hardness` (:func:`class_iou_from`: per-class IoU of a
real-only segmenter for the hardness-aware mode), :mod:`~rsaug.synthesis.tilesets` (:func:`synthesize_tileset`:
a plan -> a synthetic tile set), :mod:`~rsaug.synthesis.radiometry` (:func:`fit_alignment`: radiometric alignment
of synthetic images to the real training statistics), :mod:`~rsaug.synthesis.filtering` (:func:`filter_tileset`:
FreeMask pixel filtering and alignment of an existing synthetic set) and :mod:`~rsaug.synthesis.scenes`
(:func:`synthesize_scene`: one large mask -> one seamless synthetic scene)::

    from rsaug.synthesis import filter_tileset, fit_alignment, plan_synthesis, synthesize_tileset

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`, :mod:`rsaug.segmentation`.
"""

from __future__ import annotations

from rsaug.segmentation.files import check_segmenter_state  # its home; kept here for the public API
from rsaug.synthesis.filtering import (
    DEFAULT_MARGIN,
    FILTER_REPORT,
    FilterConfig,
    FilterResult,
    class_mean_losses,
    filter_mask,
    filter_tileset,
    pixel_losses,
)
from rsaug.synthesis.hardness import ClassIoU, class_iou_from, segmenter_iou
from rsaug.synthesis.planner import (
    PlanConfig,
    SynthesisPlan,
    class_hardness_weights,
    load_plan,
    mask_hardness,
    plan_synthesis,
    sample_seed,
    save_plan,
)
from rsaug.synthesis.radiometry import (
    ALIGN_METHODS,
    AlignmentConfig,
    BandStatistics,
    RadiometricAlignment,
    alignment_or_none,
    fit_alignment,
)
from rsaug.synthesis.scenes import SceneConfig, feather_weights, synthesize_scene, window_starts
from rsaug.synthesis.tilesets import (
    SynthesisConfig,
    SynthesisResult,
    check_compatible,
    sample_noise,
    synthesize_tileset,
    synthetic_tile_id,
)

__all__ = [
    "ALIGN_METHODS",
    "DEFAULT_MARGIN",
    "FILTER_REPORT",
    "AlignmentConfig",
    "BandStatistics",
    "ClassIoU",
    "FilterConfig",
    "FilterResult",
    "PlanConfig",
    "RadiometricAlignment",
    "SceneConfig",
    "SynthesisConfig",
    "SynthesisPlan",
    "SynthesisResult",
    "alignment_or_none",
    "check_compatible",
    "check_segmenter_state",
    "class_hardness_weights",
    "class_iou_from",
    "class_mean_losses",
    "feather_weights",
    "filter_mask",
    "filter_tileset",
    "fit_alignment",
    "load_plan",
    "mask_hardness",
    "pixel_losses",
    "plan_synthesis",
    "sample_noise",
    "sample_seed",
    "save_plan",
    "segmenter_iou",
    "synthesize_scene",
    "synthesize_tileset",
    "synthetic_tile_id",
    "window_starts",
]

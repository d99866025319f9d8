"""The downstream benchmark (``rsaug benchmark-augmentation``): does synthetic data help a segmentation network?

Owns: the protocol (:mod:`~rsaug.benchmark.config`), the arms (:mod:`~rsaug.benchmark.arms`), the resumable runner
(:mod:`~rsaug.benchmark.runner`), the statistics over seeds (:mod:`~rsaug.benchmark.statistics`) and the report
(:mod:`~rsaug.benchmark.report` files, :mod:`~rsaug.benchmark.plots` PNGs, :mod:`~rsaug.benchmark.html` page).

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`, :mod:`rsaug.synthesis`, :mod:`rsaug.segmentation`
(and lazily matplotlib). Not :mod:`rsaug.evaluation`.
"""

from __future__ import annotations

import warnings

from rsaug import segmentation
from rsaug.benchmark.arms import Arm, resolve_arms, sweep_arms
from rsaug.benchmark.config import ARM_KINDS, PRESET_DEFAULTS, BenchmarkConfig, preset_defaults
from rsaug.benchmark.report import build_report, load_report
from rsaug.benchmark.runner import check_test_tiles, collect_runs, generate_synthetic, run_benchmark
from rsaug.benchmark.statistics import paired_comparison, summarize, summarize_sweep, summarize_validation

__all__ = [
    "ARM_KINDS",
    "PRESET_DEFAULTS",
    "Arm",
    "BenchmarkConfig",
    "build_report",
    "check_test_tiles",
    "collect_runs",
    "generate_synthetic",
    "load_report",
    "paired_comparison",
    "preset_defaults",
    "resolve_arms",
    "run_benchmark",
    "summarize",
    "summarize_sweep",
    "summarize_validation",
    "sweep_arms",
]

#: Names that earlier releases exported from ``rsaug.benchmark`` and that now live in :mod:`rsaug.segmentation`
#: (the U-Net shared by evaluate and benchmark); kept importable for one release, with a DeprecationWarning.
_MOVED_TO_SEGMENTATION = (
    "SegmenterConfig",
    "TileArrays",
    "TrainedSegmenter",
    "confusion_matrix",
    "load_tiles",
    "preset",
    "scores",
    "train_segmenter",
)


def __getattr__(name: str) -> object:
    if name in _MOVED_TO_SEGMENTATION:
        warnings.warn(
            f"rsaug.benchmark.{name} moved to rsaug.segmentation.{name}; this alias will be removed in the next "
            "release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(segmentation, name)
    raise AttributeError(f"module 'rsaug.benchmark' has no attribute {name!r}")

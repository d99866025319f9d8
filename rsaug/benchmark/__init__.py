"""The downstream benchmark (``rsaug benchmark-augmentation``): protocol config, arms, runner, statistics and report.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`, :mod:`rsaug.synthesis`, :mod:`rsaug.segmentation`.
"""
from __future__ import annotations

from rsaug.benchmark.report import build_report, load_report, paired_comparison, summarize
from rsaug.benchmark.config import ARM_KINDS, BenchmarkConfig
from rsaug.benchmark.runner import collect_runs, resolve_arms, run_benchmark

__all__ = [
    "ARM_KINDS",
    "BenchmarkConfig",
    "build_report",
    "collect_runs",
    "load_report",
    "paired_comparison",
    "resolve_arms",
    "run_benchmark",
    "summarize",
]

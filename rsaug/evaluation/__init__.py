"""Generator evaluation (``rsaug evaluate``): FID, LPIPS diversity, mCSD/mOCD, segmentation fidelity, Table I.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`, :mod:`rsaug.synthesis`, :mod:`rsaug.segmentation`.
"""
from __future__ import annotations

from rsaug.evaluation.evaluate import EvaluateConfig, evaluate, html_report, markdown_table, summary_line

__all__ = ["EvaluateConfig", "evaluate", "html_report", "markdown_table", "summary_line"]

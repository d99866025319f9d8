"""Generator evaluation (``rsaug evaluate``): FID, LPIPS diversity, mCSD/mOCD, segmentation fidelity, radiometry.

Owns: the evaluation run (:mod:`~rsaug.evaluation.evaluate`), the metric implementations
(:mod:`~rsaug.evaluation.metrics`), the radiometric figures in DN (:mod:`~rsaug.evaluation.radiometry`), the
offline pretrained networks (:mod:`~rsaug.evaluation.pretrained`) and the Table I rendering as Markdown / HTML
(:mod:`~rsaug.evaluation.tables`).

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`, :mod:`rsaug.synthesis`, :mod:`rsaug.segmentation`
(and lazily lightning). Not :mod:`rsaug.benchmark`.
"""

from __future__ import annotations

from rsaug.evaluation.evaluate import EvaluateConfig, evaluate
from rsaug.evaluation.tables import html_report, markdown_table, summary_line

__all__ = ["EvaluateConfig", "evaluate", "html_report", "markdown_table", "summary_line"]

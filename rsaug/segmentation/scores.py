"""The one confusion matrix and the scores computed from it (mIoU, FWIoU, accuracy, per-class IoU).

Shared by ``rsaug evaluate`` (segmentation fidelity) and ``rsaug benchmark-augmentation``.

``cm[t, p]`` counts pixels of true class ``t`` predicted as ``p``; pixels whose target is ``ignore_index``
(255, unknown) are not counted. ``IoU_k = cm[k,k] / (row_k + col_k - cm[k,k])``. A class is *present* when it
occurs in the target (``row_k > 0``); ``mIoU`` is the mean IoU over present classes, ``FWIoU`` is
``sum_k row_k / total * IoU_k`` and pixel accuracy is ``trace / total``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from rsaug.core.classes import IGNORE


def confusion_matrix(
    pred: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    ignore_index: int = IGNORE,
) -> np.ndarray:
    """Confusion matrix ``cm[true, predicted]`` (int64, K x K); target pixels equal to ``ignore_index`` are skipped.

    Args:
        pred: Predicted class indices, any shape (0..K-1).
        target: True class indices, same shape (0..K-1 or ``ignore_index``).
        num_classes: K.
        ignore_index: Target value meaning unknown (255).

    Raises:
        ValueError: On shape mismatch or values outside 0..K-1 (besides ``ignore_index`` in the target).
    """
    p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    t = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
    p = p.astype(np.int64).ravel()
    t = t.astype(np.int64).ravel()
    keep = t != ignore_index
    p, t = p[keep], t[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target values outside 0..{num_classes - 1} and {ignore_index}")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predicted values outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores from a confusion matrix ``cm[true, predicted]``.

    Returns:
        A JSON-friendly dict: ``miou`` (mean IoU over classes present in the target), ``fwiou``
        (frequency-weighted IoU), ``accuracy`` (pixel accuracy), ``mean_class_accuracy`` (mean recall over present
        classes), ``per_class_iou`` / ``per_class_accuracy`` (lists, None for classes absent from the target),
        ``present`` (bool list), ``pixels`` (total counted pixels), ``class_pixels`` (target pixels per class),
        and ``class_names`` when given. Scores are fractions in [0, 1]; NaN when nothing was counted.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    tp = np.diag(cm)
    rows = cm.sum(axis=1)
    cols = cm.sum(axis=0)
    total = cm.sum()
    present = rows > 0
    union = rows + cols - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, tp / union, 0.0)
        recall = np.where(rows > 0, tp / rows, 0.0)
    nan = math.nan
    out: dict[str, Any] = {
        "miou": float(iou[present].mean()) if present.any() else nan,
        "fwiou": float((rows[present] / total * iou[present]).sum()) if total > 0 else nan,
        "accuracy": float(tp.sum() / total) if total > 0 else nan,
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else nan,
        "per_class_iou": [float(v) if ok else None for v, ok in zip(iou, present)],
        "per_class_accuracy": [float(v) if ok else None for v, ok in zip(recall, present)],
        "present": [bool(v) for v in present],
        "pixels": int(total),
        "class_pixels": [int(v) for v in rows],
    }
    if class_names is not None:
        out["class_names"] = list(class_names)
    return out


def scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores of a confusion matrix via :func:`segmentation_scores`.

    Returns:
        ``miou``, ``fwiou``, ``acc`` and ``iou`` (per-class IoU, ``None`` for classes absent from the test
        split), plus every field of :func:`segmentation_scores`.
    """
    s = segmentation_scores(np.asarray(cm), class_names)
    return {"miou": s["miou"], "fwiou": s["fwiou"], "acc": s["accuracy"], "iou": s["per_class_iou"], **s}

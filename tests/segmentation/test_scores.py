"""The one confusion matrix and its scores against hand computations (:mod:`rsaug.segmentation.scores`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.segmentation import confusion_matrix, scores, segmentation_scores


def test_confusion_matrix_and_scores_match_hand_computation() -> None:
    target = np.array([[0, 0, 0, 1], [1, 1, 2, 255], [255, 2, 2, 0]], dtype=np.uint8)
    pred = np.array([[0, 0, 1, 1], [1, 0, 2, 3], [1, 2, 0, 0]], dtype=np.uint8)
    cm = confusion_matrix(pred, target, num_classes=4)
    # rows = true class, cols = predicted; the two unknown pixels are not counted
    expected = np.array([[3, 1, 0, 0], [1, 2, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]])
    assert np.array_equal(cm, expected)
    assert np.array_equal(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 4), expected)
    s = segmentation_scores(cm, ["a", "b", "c", "d"])
    # IoU_0 = 3 / (4 + 5 - 3) = 0.5 ; IoU_1 = 2 / (3 + 3 - 2) = 0.5 ; IoU_2 = 2 / (3 + 2 - 2) = 2/3
    assert s["per_class_iou"][:3] == pytest.approx([0.5, 0.5, 2 / 3])
    assert s["per_class_iou"][3] is None and s["present"] == [True, True, True, False]
    assert s["miou"] == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)
    assert s["fwiou"] == pytest.approx(4 / 10 * 0.5 + 3 / 10 * 0.5 + 3 / 10 * 2 / 3)
    assert s["accuracy"] == pytest.approx(7 / 10)
    assert s["mean_class_accuracy"] == pytest.approx((3 / 4 + 2 / 3 + 2 / 3) / 3)
    assert s["pixels"] == 10 and s["class_pixels"] == [4, 3, 3, 0] and s["class_names"] == ["a", "b", "c", "d"]


def test_confusion_matrix_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(np.zeros(3), np.array([0, 5, 1]), 3)
    with pytest.raises(ValueError, match="predicted"):
        confusion_matrix(np.array([0, 3, 1]), np.zeros(3), 3)
    empty = segmentation_scores(np.zeros((3, 3)))
    assert math.isnan(empty["miou"]) and math.isnan(empty["accuracy"])


def test_per_class_iou_matches_hand_computation() -> None:
    # reference (rows) vs prediction (columns) built pixel by pixel, with unknown pixels that must be ignored
    pairs = [(0, 0)] * 5 + [(0, 1)] + [(1, 0)] * 2 + [(1, 1)] * 3 + [(1, 2)] + [(2, 2)] * 4
    target = np.array([t for t, _ in pairs] + [IGNORE] * 7, dtype=np.uint8)
    pred = np.array([p for _, p in pairs] + [2] * 7, dtype=np.int64)
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    s = scores(cm)
    iou = [5 / (6 + 7 - 5), 3 / (6 + 4 - 3), 4 / (4 + 5 - 4)]
    assert s["iou"] == pytest.approx(iou)
    assert s["miou"] == pytest.approx(sum(iou) / 3)
    assert s["fwiou"] == pytest.approx(6 / 16 * iou[0] + 6 / 16 * iou[1] + 4 / 16 * iou[2])
    assert s["acc"] == pytest.approx(12 / 16)

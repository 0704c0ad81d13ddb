"""Metric functions against confusion matrices worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from deep_lulc.shared.lulc.metrics import confusion_matrix, scores


def test_confusion_matrix_ignores_nodata_and_orders_by_values() -> None:
    truth = np.array([[0, 1, 1], [2, 2, 5]], dtype=np.uint8)
    predicted = np.array([[5, 1, 2], [2, 2, 1]], dtype=np.uint8)
    matrix = confusion_matrix(truth, predicted, [1, 2, 5])
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="predictions hold values outside"):
        confusion_matrix(truth, np.full_like(truth, 7), [1, 2, 5])


def test_scores_by_hand_with_an_absent_class() -> None:
    # classes A, B, C; C never occurs in the truth but is predicted once
    matrix = np.array([[8, 1, 1], [2, 6, 0], [0, 0, 0]])
    result = scores(matrix, [1, 2, 3], ["A", "B", "C"])
    a, b, c = (result["per_class"][k] for k in "ABC")
    assert a["iou"] == pytest.approx(8 / (10 + 10 - 8))  # TP / (support + predicted - TP)
    assert b["iou"] == pytest.approx(6 / (8 + 7 - 6))
    assert c["iou"] == 0.0
    assert c["support"] == 0
    assert c["recall"] is None  # undefined without support
    assert result["miou"] == pytest.approx((8 / 12 + 6 / 9) / 2)  # over classes present in the truth only
    assert result["classes_present"] == ["A", "B"]
    assert result["overall_accuracy"] == pytest.approx(14 / 18)
    assert result["seed_metric"] == result["overall_accuracy"]
    assert a["precision"] == pytest.approx(8 / 10)
    assert a["recall"] == pytest.approx(8 / 10)
    assert b["f1"] == pytest.approx(2 * (6 / 7) * (6 / 8) / (6 / 7 + 6 / 8))


def test_seed_metric_flatters_a_model_that_ignores_the_rare_class() -> None:
    truth = np.array([1] * 95 + [5] * 5, dtype=np.uint8)
    predicted = np.ones(100, dtype=np.uint8)  # never says water
    result = scores(confusion_matrix(truth, predicted, [1, 5]), [1, 5], ["Land", "Water"])
    assert result["seed_metric"] == pytest.approx(0.95)
    assert result["per_class"]["Water"]["iou"] == 0.0
    assert result["miou"] == pytest.approx(0.475)

"""Segmentation metrics from a confusion matrix, the honest ones and the seed's.

The original reported "IoU 0.82" computed as pixel accuracy over labelled pixels, which a model that
never predicts water or wetland can still reach. Per-class IoU and its mean over the classes present
say how the rare classes fare.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, values: Sequence[int], *, nodata: int = 0) -> np.ndarray:
    """counts[i, j]: pixels of true class values[i] predicted as values[j]; nodata truth is ignored."""
    lookup = np.full(256, -1, dtype=np.int64)
    lookup[list(values)] = np.arange(len(values))
    truth = np.asarray(truth).ravel()
    predicted = np.asarray(predicted).ravel()
    keep = truth != nodata
    t, p = lookup[truth[keep]], lookup[predicted[keep]]
    if (t < 0).any():
        raise ValueError(f"truth holds values outside {list(values)}")
    if (p < 0).any():
        raise ValueError(f"predictions hold values outside {list(values)}")
    n = len(values)
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n)


def scores(matrix: np.ndarray, values: Sequence[int], names: Sequence[str]) -> dict[str, Any]:
    """Per-class IoU, precision, recall, F1 and support; mIoU over classes present in the truth; overall
    accuracy; and `seed_metric`, the original's "IoU" (pixel accuracy over labelled pixels)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (support + predicted - tp)
        precision = tp / predicted
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall)
    present = support > 0
    total = matrix.sum()
    per_class = {
        name: {
            "value": int(value),
            "iou": _number(iou[i]),
            "precision": _number(precision[i]),
            "recall": _number(recall[i]),
            "f1": _number(f1[i]),
            "support": int(support[i]),
        }
        for i, (value, name) in enumerate(zip(values, names, strict=True))
    }
    accuracy = float(tp.sum() / total) if total else None
    return {
        "per_class": per_class,
        "miou": float(np.nanmean(iou[present])) if present.any() else None,
        "classes_present": [names[int(i)] for i in np.flatnonzero(present)],
        "overall_accuracy": accuracy,
        "seed_metric": accuracy,
        "seed_metric_note": "the original's reported 'IoU': pixel accuracy over labelled pixels",
        "pixels": int(total),
        "confusion_matrix": {"values": [int(v) for v in values], "counts": matrix.astype(np.int64).tolist()},
    }


def _number(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 6)

"""The eo-learn way as a yardstick: a LightGBM pixel classifier on the same features and validation pixels."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from deep_lulc.shared.lulc.classes import ClassScheme
from deep_lulc.shared.lulc.metrics import confusion_matrix, scores
from deep_lulc.shared.models.pixel_classifier import THREADS, TRAIN_PIXELS, fit_lightgbm, sample_pixels
from deep_lulc.shared.products.chips import ChipRecord, read_chip

log = logging.getLogger(__name__)


def _pixels(records: list[ChipRecord], *, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (unnormalised, NaN where unobserved) labelled pixels of the chips: LightGBM needs no scaling."""
    chips = [read_chip(record) for record in records]
    return sample_pixels([image for image, _ in chips], [label for _, label in chips], nodata=0, limit=limit, seed=seed)


def lightgbm_baseline(
    train: list[ChipRecord], validation: list[ChipRecord], *, values: list[int], names: list[str], seed: int
) -> dict[str, Any]:
    """Fit on a random sample of training pixels (class-balanced weights), score every validation pixel.

    The chip-level yardstick; `train --architecture lightgbm` makes the same classifier a model of its own."""
    x_train, y_train = _pixels(train, limit=TRAIN_PIXELS, seed=seed)
    x_valid, y_valid = _pixels(validation, limit=None, seed=seed)
    booster = fit_lightgbm(x_train, y_train, seed=seed)
    classes = np.unique(y_train)
    scores_by_class = np.asarray(booster.predict(x_valid, num_threads=THREADS))
    predicted = np.asarray(classes[scores_by_class.argmax(axis=1)], dtype=np.uint8)
    log.info("LightGBM baseline: %d training pixels, %d validation pixels", len(y_train), len(y_valid))
    matrix = confusion_matrix(y_valid.astype(np.uint8), predicted, values)
    result = scores(matrix, values, names)
    result["training_pixels"] = len(y_train)
    return result


def requested_baseline(
    name: str | None, train: list[ChipRecord], validation: list[ChipRecord], *, scheme: ClassScheme, seed: int
) -> dict[str, Any] | None:
    """The baseline `--baseline` asks for, scored on the labelled classes; None when it asks for none."""
    if name != "lightgbm":
        return None
    labelled = [c for c in scheme.classes if c.value != scheme.nodata]
    return lightgbm_baseline(
        train, validation, values=[c.value for c in labelled], names=[c.name for c in labelled], seed=seed
    )

"""Map-level validation: the validation blocks predicted as maps, through the same sliding-window code
and windows as `predict`, and scored against the chips' labels.

Chip-level scores feed the network exactly the chips it was trained on; a map is predicted in large
windows whose edges fall elsewhere. A model can look fine on chips and collapse on maps (the issue that
made 99 % of an AOI one class), so the number we report is the map's, and each window size we validate
is recorded in the model item for `predict` to use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deep_lulc.shared.geo.windows import DEFAULT_OVERLAP, PixelWindow, Span, window_grid
from deep_lulc.shared.lulc.metrics import confusion_matrix, scores
from deep_lulc.shared.models.inference import FeatureSource, InferenceSetup, RegionReader, predict_region
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.chips import ChipRecord, read_chip, recorded_windows
from deep_lulc.shared.products.features import open_features

log = logging.getLogger(__name__)


def validation_region(records: Sequence[ChipRecord], margin: int, height: int, width: int) -> PixelWindow:
    """The validation chips' bounding box on the features grid, with `margin` px of context around it."""
    windows = recorded_windows(records, which="validation")
    top = max(0, min(row for row, _, _ in windows) - margin)
    left = max(0, min(col for _, col, _ in windows) - margin)
    bottom = min(height, max(row + size for row, _, size in windows) + margin)
    right = min(width, max(col + size for _, col, size in windows) + margin)
    return PixelWindow(Span(top, bottom), Span(left, right))


def validation_truth(records: Sequence[ChipRecord], region: PixelWindow) -> np.ndarray:
    """The validation chips' (eroded) labels painted onto the region; 0 where no validation chip lies."""
    truth = np.zeros((region.height, region.width), dtype=np.uint8)
    for record in records:
        if record.window is None:
            continue
        row, col, size = record.window
        _, label = read_chip(record)
        y0, x0 = row - region.rows.start, col - region.cols.start
        target = truth[y0 : y0 + size, x0 : x0 + size]
        labelled = label[: target.shape[0], : target.shape[1]] > 0
        target[labelled] = label[: target.shape[0], : target.shape[1]][labelled]
    return truth


def map_metrics(
    predictor: nn.Module,
    *,
    features_href: str,
    records: Sequence[ChipRecord],
    config: ModelConfig,
    device: torch.device,
    windows: Sequence[tuple[int, int]],
) -> dict[tuple[int, int], dict[str, Any]]:
    """Scores of the validation region's map for each (window, overlap)."""
    _, dataset = open_features(features_href, lazy=False)
    source = FeatureSource(dataset)
    region = validation_region(records, DEFAULT_OVERLAP, source.height, source.width)
    truth = validation_truth(records, region)
    observed = source.observed(region.rows, region.cols)
    labelled = [v for v in config.class_values if v != config.nodata]
    names = [n for v, n in zip(config.class_values, config.class_names, strict=True) if v != config.nodata]
    results: dict[tuple[int, int], dict[str, Any]] = {}
    for window, overlap in windows:
        predicted = np.full((region.height, region.width), config.nodata, dtype=np.uint8)
        setup = InferenceSetup.for_model(config, window=window, overlap=overlap, batch_size=1, device=device)

        def emit(rows: Span, cols: Span, probabilities: np.ndarray, target: np.ndarray = predicted) -> None:
            target[rows.start : rows.stop, cols.start : cols.stop] = probabilities.argmax(axis=0)

        whole = PixelWindow(Span(0, region.height), Span(0, region.width))
        predict_region(
            predictor,
            RegionReader(source, region),
            core=whole,
            windows=window_grid(region.height, region.width, window, overlap),
            setup=setup,
            emit=emit,
        )
        predicted[~observed] = config.nodata
        # Unobserved pixels stay in the matrix as answers of "NoData", so they count against recall.
        matrix = confusion_matrix(truth, predicted, [config.nodata, *labelled], nodata=config.nodata)
        result = scores(matrix, [config.nodata, *labelled], ["NoData", *names])
        result["per_class"].pop("NoData")
        result["window"], result["overlap"] = window, overlap
        result["region"] = {
            "row": region.rows.start,
            "col": region.cols.start,
            "height": region.height,
            "width": region.width,
        }
        results[(window, overlap)] = result
        log.info("validation map, %d px windows (overlap %d): mIoU %.4f", window, overlap, result["miou"] or 0.0)
    return results

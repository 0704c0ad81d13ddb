"""`deep-lulc evaluate`: score a class map, or a change map, against reference label polygons.

The labels are burnt onto the map's own grid window by window (each window with a halo as wide as the
erosion radius, so the result equals eroding the whole raster at once) and only confusion counts are
kept, so memory is set by `--block-size`, not by the map. Pixels the map left as nodata are skipped and
counted: a map that abstains everywhere it is unsure must not look better than one that commits.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from rasterio import features as rasterio_features

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.erosion import erode_labels
from deep_lulc.shared.geo.geometry import format_bbox
from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.geo.windows import PixelWindow, blocks
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import StagedOutput, staged_output
from deep_lulc.shared.lulc.classes import ClassScheme, LulcClass
from deep_lulc.shared.lulc.labels import LabelPolygons, describe, load_class_map, read_labels
from deep_lulc.shared.lulc.metrics import confusion_matrix, scores
from deep_lulc.shared.lulc.transitions import TransitionCoding, class_indices
from deep_lulc.shared.products.class_map import ClassMap, require_shape, source_href
from deep_lulc.shared.products.evaluation import (
    ErrorMap,
    error_codes,
    evaluation_id,
    evaluation_item,
    open_scored_map,
)
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.evaluate.params import EvaluateInputs, EvaluateParams

STAGE = "evaluate"
SHAPE_FIX = "pass an item written by `deep-lulc predict` or `deep-lulc change`"
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: EvaluateInputs, output: str, params: EvaluateParams) -> StageResult:
    """Score the map at `inputs.prediction` against `inputs.labels` (and, for a change map,
    `inputs.before_labels`); write the evaluation item to `output`."""
    target, coding = open_scored_map(inputs.prediction)
    _require_label_periods(inputs, is_change=coding is not None)
    after_labels, before_labels = _label_burners(target, inputs, params)
    identifier = evaluation_id(target.item.id)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        errors = ErrorMap(folder, target.grid, label_fill=target.scheme.nodata)
        try:
            if coding is None or before_labels is None:
                metrics = score_map(target, after_labels, params.block_size, errors)
            else:
                metrics = score_change(target, coding, before_labels, after_labels, params.block_size, errors)
            errors.finish(
                title=target.item.id,
                label_classes=label_legend(target.scheme, coding),
                label_nodata=target.scheme.nodata,
            )
        except BaseException:
            errors.abandon()
            raise
        metrics["error_map"] = errors.summary()
        catalog_href = _publish(
            staged,
            folder,
            identifier,
            target,
            metrics,
            errors,
            inputs=inputs,
            params=params,
            labels=(after_labels, before_labels),
        )
    return StageResult.of_item(STAGE, catalog_href, identifier, _extra(metrics, coding))


def _require_label_periods(inputs: EvaluateInputs, *, is_change: bool) -> None:
    """A change map is scored against labels of both periods, a single-period map against one."""
    if is_change and inputs.before_labels is None:
        raise BadInputError(
            f"{storage.redact(inputs.prediction)} is a change map: --labels are the after-period labels "
            "and the before-period labels are missing",
            fix="pass --before-labels VECTOR (labels of the earlier period)",
        )
    if not is_change and inputs.before_labels is not None:
        raise BadInputError(
            "--before-labels applies to change maps only, and --prediction is a single-period map",
            fix="leave out --before-labels, or pass the catalog written by `deep-lulc change`",
        )


def _label_burners(
    target: ClassMap, inputs: EvaluateInputs, params: EvaluateParams
) -> tuple[LabelBurner, LabelBurner | None]:
    """The --labels and --before-labels (None when not given) read in the map's classes onto its grid."""
    class_map = load_class_map(params.class_map)

    def burner(href: str, option: str) -> LabelBurner:
        labels = read_labels(
            href,
            class_column=params.class_column,
            scheme=target.scheme,
            scheme_fix="evaluate against a map whose scheme has them",
            class_map=class_map,
            target_epsg=epsg_of(target.grid),
        )
        require_overlap(labels, target.grid, prediction=inputs.prediction, option=option)
        return LabelBurner(labels, target.grid, radius=params.erosion_radius, nodata=target.scheme.nodata)

    after_labels = burner(inputs.labels, "--labels")
    return after_labels, None if inputs.before_labels is None else burner(inputs.before_labels, "--before-labels")


def _extra(metrics: dict[str, Any], coding: TransitionCoding | None) -> dict[str, Any]:
    """The headline numbers of the result line; the rest lives in the metrics asset."""
    if coding is None:
        return {
            "miou": metrics["miou"],
            "overall_accuracy": metrics["overall_accuracy"],
            "iou": {name: v["iou"] for name, v in metrics["per_class"].items() if v["support"]},
            "seed_metric": metrics["seed_metric"],
            "pixels": metrics["pixels"],
            "prediction_nodata_pixels": metrics["prediction_nodata_pixels"],
        }
    return {
        "change_f1": metrics["change"]["f1"],
        "change_iou": metrics["change"]["iou"],
        "change_precision": metrics["change"]["precision"],
        "change_recall": metrics["change"]["recall"],
        "overall_accuracy": metrics["overall_accuracy"],
        "transition_accuracy": metrics["transition_accuracy"],
        "changed_pixels_true": metrics["changed_pixels_true"],
        "changed_pixels_predicted": metrics["changed_pixels_predicted"],
        "prediction_nodata_pixels": metrics["prediction_nodata_pixels"],
    }


def label_legend(scheme: ClassScheme, coding: TransitionCoding | None) -> list[LulcClass]:
    """Classes of the labels preview: the map's classes, or for a change map the true changes in the colour
    of the class they became over unchanged grey (the change map's own thumbnail style)."""
    if coding is None:
        return list(scheme.classes)
    return coding.new_class_legend("unchanged in the labels")


def _publish(
    staged: StagedOutput,
    folder: Path,
    identifier: str,
    target: ClassMap,
    metrics: dict[str, Any],
    errors: ErrorMap,
    *,
    inputs: EvaluateInputs,
    params: EvaluateParams,
    labels: tuple[LabelBurner, LabelBurner | None],
) -> str:
    after_labels, before_labels = labels
    metrics["labels"] = describe(after_labels.labels)
    if before_labels is not None:
        metrics["before_labels"] = describe(before_labels.labels)
    metrics["erosion_radius"] = params.erosion_radius
    item = evaluation_item(
        identifier,
        folder=folder,
        target=target,
        metrics=metrics,
        labels=after_labels.labels.source,
        before_labels=None if before_labels is None else before_labels.labels.source,
        errors=errors,
        derived_from=[source_href(target, inputs.prediction)],
    )
    return finish_single_item_output(
        staged,
        item,
        catalog_id=identifier,
        description=f"Evaluation of {target.item.id} against {posixpath.basename(after_labels.labels.source)}",
        stage=STAGE,
        inputs=inputs,
        params=params,
    )


def require_overlap(labels: LabelPolygons, grid: GeoBox, *, prediction: str, option: str) -> None:
    """Labels of another area would score as 'no labelled pixel'; say which extents miss each other."""
    left, bottom, right, top = (float(v) for v in shapely.total_bounds(labels.geometries))
    west, south, east, north = (float(v) for v in grid.boundingbox)
    if shapely.box(left, bottom, right, top).intersects(shapely.box(west, south, east, north)):
        return
    to_wgs84 = Transformer.from_crs(epsg_of(grid), 4326, always_xy=True)
    label_extent = format_bbox(to_wgs84.transform_bounds(left, bottom, right, top))
    map_extent = format_bbox(to_wgs84.transform_bounds(west, south, east, north))
    raise BadInputError(
        f"{option} {labels.source} (extent {label_extent}) do not overlap "
        f"the prediction {storage.redact(prediction)} (extent {map_extent})",
        fix="pass labels of the mapped area, or a map of the labels' area",
    )


class LabelBurner:
    """Label polygons rasterised window by window onto a grid, each class eroded by a disk of `radius`."""

    def __init__(self, labels: LabelPolygons, grid: GeoBox, *, radius: int, nodata: int) -> None:
        self.labels = labels
        self.grid = grid
        self.radius = radius
        self.nodata = nodata
        self.tree = shapely.STRtree(labels.geometries)

    def window(self, window: PixelWindow) -> np.ndarray:
        row, col, height, width = window.row, window.col, window.height, window.width
        top, left = max(0, row - self.radius), max(0, col - self.radius)
        bottom = min(self.grid.height, row + height + self.radius)
        right = min(self.grid.width, col + width + self.radius)
        halo = self.grid[top:bottom, left:right]
        bounds = tuple(halo.boundingbox)
        # Sorted, so overlapping polygons burn in file order exactly as a whole-raster burn would.
        hits = np.sort(self.tree.query(shapely.box(*bounds)))
        if len(hits) == 0:
            return np.full((height, width), self.nodata, dtype=np.uint8)
        burned = rasterio_features.rasterize(
            zip(self.labels.geometries[hits], self.labels.values[hits].tolist(), strict=True),
            out_shape=(halo.height, halo.width),
            transform=halo.affine,
            fill=self.nodata,
            dtype="uint8",
        )
        eroded = erode_labels(np.asarray(burned, dtype=np.uint8), self.radius, nodata=self.nodata)
        return eroded[row - top : row - top + height, col - left : col - left + width]


def _no_pixels(labelled: int, skipped: int) -> BadInputError:
    if labelled == 0:
        return BadInputError(
            "no labelled pixel falls on the map (polygons narrower than a pixel, or eroded away)",
            fix="pass larger label polygons or a smaller --erosion-radius",
        )
    return BadInputError(
        f"all {skipped} labelled pixels are nodata in the prediction", fix="pass labels of the area the map covers"
    )


def score_map(target: ClassMap, burner: LabelBurner, size: int, errors: ErrorMap | None = None) -> dict[str, Any]:
    """Per-class scores over pixels labelled in the truth and mapped in the prediction; each window's
    agreement goes to `errors`."""
    scheme = target.scheme
    values = [c.value for c in scheme.labelled]
    names = [c.name for c in scheme.labelled]
    matrix = np.zeros((len(values), len(values)), dtype=np.int64)
    labelled = skipped = 0
    with target.open() as dataset:
        require_shape(dataset, target.grid, what="prediction", fix=SHAPE_FIX)
        for window in blocks(target.grid.height, target.grid.width, size):
            predicted = dataset.read(1, window=window.rasterio())
            class_indices(predicted, scheme, what="the prediction")
            truth = burner.window(window)
            has_truth = truth != scheme.nodata
            keep = has_truth & (predicted != scheme.nodata)
            labelled += int(has_truth.sum())
            skipped += int((has_truth & ~keep).sum())
            matrix += confusion_matrix(truth[keep], predicted[keep], values, nodata=scheme.nodata)
            if errors is not None:
                codes = error_codes(has_truth, predicted != scheme.nodata, predicted == truth)
                errors.add(codes, truth, row=window.row, col=window.col)
    if not matrix.any():
        raise _no_pixels(labelled, skipped)
    log.info("%d labelled pixels scored, %d skipped where the prediction has no data", matrix.sum(), skipped)
    return {
        "kind": "map",
        **scores(matrix, values, names),
        "labelled_pixels": labelled,
        "prediction_nodata_pixels": skipped,
    }


def score_change(
    target: ClassMap,
    coding: TransitionCoding,
    before: LabelBurner,
    after: LabelBurner,
    size: int,
    errors: ErrorMap | None = None,
) -> dict[str, Any]:
    """Changed/unchanged confusion and transition accuracy over pixels labelled in both periods and mapped;
    plus each period's map scores, which the change map carries as its from- and to-classes. `errors` gets
    where the changed/unchanged call agrees with the labels, and the labels' own changes."""
    scheme = coding.scheme
    values = np.array([c.value for c in coding.classes], dtype=np.int64)
    names = [c.name for c in coding.classes]
    n = coding.n
    binary = np.zeros(4, dtype=np.int64)  # truth * 2 + predicted, 1 = changed
    periods = {"before_map": np.zeros((n, n), dtype=np.int64), "after_map": np.zeros((n, n), dtype=np.int64)}
    transitions_right = labelled = skipped = 0
    with target.open() as dataset:
        require_shape(dataset, target.grid, what="prediction", fix=SHAPE_FIX)
        for window in blocks(target.grid.height, target.grid.width, size):
            origin, destination = coding.decode(dataset.read(1, window=window.rasterio()))
            was = class_indices(before.window(window), scheme, what="--before-labels")
            now = class_indices(after.window(window), scheme, what="--labels")
            mapped = origin >= 0
            both = (was >= 0) & (now >= 0)
            keep = both & mapped
            labelled += int(both.sum())
            skipped += int((both & ~mapped).sum())
            truly = (was != now)[keep]
            said = (origin != destination)[keep]
            binary += np.bincount(truly.astype(np.int64) * 2 + said, minlength=4)
            transitions_right += int((truly & (origin[keep] == was[keep]) & (destination[keep] == now[keep])).sum())
            if errors is not None:
                codes = error_codes(both, mapped, (was != now) == (origin != destination))
                errors.add(codes, coding.as_new_class(was, now), row=window.row, col=window.col)
            for key, truth, mapped_class in (("before_map", was, origin), ("after_map", now, destination)):
                scored = (truth >= 0) & mapped
                periods[key] += confusion_matrix(
                    values[truth[scored]], values[mapped_class[scored]], values.tolist(), nodata=scheme.nodata
                )
    if not binary.any():
        raise _no_pixels(labelled, skipped)
    matrix = binary.reshape(2, 2)
    binary_scores = scores(matrix, [0, 1], ["unchanged", "changed"])
    changed = binary_scores["per_class"]["changed"]
    true_changes = int(matrix[1].sum())
    log.info("%d pixels labelled in both periods scored, %d truly changed", int(matrix.sum()), true_changes)
    return {
        "kind": "change",
        "pixels": int(matrix.sum()),
        "labelled_pixels": labelled,
        "prediction_nodata_pixels": skipped,
        "changed_pixels_true": true_changes,
        "changed_pixels_predicted": int(matrix[:, 1].sum()),
        "change": {key: changed[key] for key in ("precision", "recall", "f1", "iou")},
        "overall_accuracy": binary_scores["overall_accuracy"],
        "transition_accuracy": round(transitions_right / true_changes, 6) if true_changes else None,
        "binary": binary_scores,
        **{key: scores(periods[key], values.tolist(), names) for key in periods},
    }

"""Evaluations: the item `evaluate` publishes (metrics, confusion matrix, error COG and previews), the map it
scores (a class map or a change map) read back, and the metrics read back.

Scores say how wrong a map is; only a map says where. The error COG carries a colour table and nodata on
the pixels without labels, so QGIS or a STAC browser shows it as it is meant, and the labels are sampled on
the same lattice as the errors so the two previews line up with the prediction's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.extensions.file import FileExtension

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, write_projection
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.cog import CogWriter, Colormap, require_file
from deep_lulc.shared.io.integrity import Recorded
from deep_lulc.shared.io.plots import confusion_png
from deep_lulc.shared.io.preview import PNG_MEDIA_TYPE
from deep_lulc.shared.io.stac import items_of, read_stac, stac_id, stamp_provenance
from deep_lulc.shared.lulc.classes import LulcClass
from deep_lulc.shared.lulc.transitions import CHANGE_ASSET, TransitionCoding
from deep_lulc.shared.products.change import change_map_of
from deep_lulc.shared.products.class_map import (
    CLASS_MAP_ASSET,
    ClassMap,
    PreviewSampler,
    add_cog_asset,
    class_band,
    class_map_of,
    legend_png,
    one_map_item,
)

NO_LABEL, CORRECT, WRONG, NOT_MAPPED = 0, 1, 2, 3
ERROR_CLASSES = (
    LulcClass(CORRECT, "correct", "The map agrees with the label", "#1a9850"),
    LulcClass(WRONG, "wrong", "The map disagrees with the label", "#d73027"),
    LulcClass(NOT_MAPPED, "not_mapped", "Labelled, but the map has no data there", "#9e9e9e"),
)
ERRORS_FILE, ERRORS_PREVIEW_FILE, LABELS_PREVIEW_FILE = "errors.tif", "errors.png", "labels.png"
METRICS_FILE, CONFUSION_FILE = "metrics.json", "confusion_matrix.png"
METRICS_ASSET = "metrics"
_LABELS_PROPERTY = "deep-lulc:labels"
_BEFORE_LABELS_PROPERTY = "deep-lulc:before_labels"
_EVALUATED_PROPERTY = "deep-lulc:evaluated"  # the metrics' kind: "map" or "change"


def error_codes(labelled: np.ndarray, mapped: np.ndarray, right: np.ndarray) -> np.ndarray:
    """uint8 error codes from three masks of one window: has a label, has a prediction, they agree."""
    codes = np.full(labelled.shape, NO_LABEL, dtype=np.uint8)
    codes[labelled & mapped & right] = CORRECT
    codes[labelled & mapped & ~right] = WRONG
    codes[labelled & ~mapped] = NOT_MAPPED
    return codes


def error_colormap() -> Colormap:
    return {NO_LABEL: (255, 255, 255, 0), **{c.value: (*c.rgb, 255) for c in ERROR_CLASSES}}


class ErrorMap:
    """The error COG written window by window, with aligned samples of it and of the labels for previews."""

    def __init__(self, folder: Path, grid: GeoBox, *, label_fill: int) -> None:
        self.folder = folder
        self.writer = CogWriter(folder / ERRORS_FILE, grid, nodata=NO_LABEL, colormap=error_colormap())
        self.errors = PreviewSampler(grid.height, grid.width, fill=NO_LABEL)
        self.labels = PreviewSampler(grid.height, grid.width, fill=label_fill)
        self.counts = np.zeros(4, dtype=np.int64)

    def add(self, codes: np.ndarray, labels: np.ndarray, *, row: int, col: int) -> None:
        self.counts += np.bincount(codes.ravel(), minlength=4)[:4]
        self.writer.write(codes, row=row, col=col)
        self.errors.add(codes, row=row, col=col)
        self.labels.add(labels, row=row, col=col)

    def abandon(self) -> None:
        self.writer.abandon()

    def finish(self, *, title: str, label_classes: list[LulcClass], label_nodata: int) -> None:
        """Publish the COG and both previews."""
        self.writer.finish()
        legend_png(
            self.errors.values,
            list(ERROR_CLASSES),
            self.folder / ERRORS_PREVIEW_FILE,
            title=f"Errors: {title}",
            nodata=NO_LABEL,
        )
        legend_png(
            self.labels.values,
            label_classes,
            self.folder / LABELS_PREVIEW_FILE,
            title=f"Labels: {title}",
            nodata=label_nodata,
        )

    def add_assets(self, item: pystac.Item) -> None:
        """The error COG and both previews as assets of `item`."""
        add_cog_asset(
            item,
            "errors",
            self.folder / ERRORS_FILE,
            title="Error map: 1 correct, 2 wrong, 3 labelled but not mapped (nodata 0: no label)",
            bands=[class_band(nodata=NO_LABEL)],
            classes=self.classification(),
        )
        previews = {
            "errors_preview": (ERRORS_PREVIEW_FILE, "Error map preview"),
            "labels_preview": (LABELS_PREVIEW_FILE, "Reference labels as rasterised for scoring"),
        }
        for key, (name, title) in previews.items():
            item.add_asset(
                key,
                pystac.Asset(
                    str(self.folder / name), title=title, media_type=PNG_MEDIA_TYPE, roles=["overview", "visual"]
                ),
            )

    def classification(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = [
            {"value": NO_LABEL, "name": "no_label", "description": "No reference label", "nodata": True}
        ]
        for cls in ERROR_CLASSES:
            listed.append({**cls.to_classification(), "count": int(self.counts[cls.value])})
        return listed

    def summary(self) -> dict[str, int]:
        return {cls.name: int(self.counts[cls.value]) for cls in ERROR_CLASSES}


def evaluation_id(map_id: str) -> str:
    """`evaluation-<the evaluated map's id>`: each map (each model's, each period's, a change map) its own."""
    return stac_id("evaluation", map_id)


def evaluation_item(
    identifier: str,
    *,
    folder: Path,
    target: ClassMap,
    metrics: dict[str, Any],
    labels: str,
    before_labels: str | None,
    errors: ErrorMap,
    derived_from: Iterable[str],
) -> pystac.Item:
    """Write `metrics` and its confusion matrix into `folder` and return the item over them and the error map
    (already finished): where and when the evaluated map is, which labels it met."""
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    confusion_png(metrics["binary"] if metrics["kind"] == "change" else metrics, folder / CONFUSION_FILE)
    prediction = target.item
    period: dict[str, Any] = {
        k: prediction.properties[k] for k in ("start_datetime", "end_datetime") if k in prediction.properties
    }
    item = pystac.Item(
        id=identifier,
        geometry=prediction.geometry,
        bbox=prediction.bbox,
        datetime=None if len(period) == 2 else prediction.datetime,
        properties={**period, _LABELS_PROPERTY: labels, _EVALUATED_PROPERTY: metrics["kind"]},
    )
    write_projection(item, target.grid)
    if before_labels is not None:
        item.properties[_BEFORE_LABELS_PROPERTY] = before_labels
    metrics_asset = pystac.Asset(
        str(folder / METRICS_FILE),
        title="Scores against the reference labels",
        media_type=pystac.MediaType.JSON,
        roles=["metadata"],
    )
    item.add_asset(METRICS_ASSET, metrics_asset)
    FileExtension.ext(metrics_asset, add_if_missing=True).size = (folder / METRICS_FILE).stat().st_size
    item.add_asset(
        "confusion_matrix",
        pystac.Asset(
            str(folder / CONFUSION_FILE),
            title="Confusion matrix (row-normalised)",
            media_type="image/png",
            roles=["overview", "visual"],
        ),
    )
    errors.add_assets(item)
    stamp_provenance(item, derived_from=derived_from)
    return item


def open_scored_map(href: str) -> tuple[ClassMap, TransitionCoding | None]:
    """The one class-map or change-map item under `href`; the coding is None for a class map."""
    items = [i for i in items_of(read_stac(href)) if CLASS_MAP_ASSET in i.assets or CHANGE_ASSET in i.assets]
    item = one_map_item(href, items, what="map")
    if item is not None:
        return (class_map_of(item), None) if CLASS_MAP_ASSET in item.assets else change_map_of(item)
    raise BadInputError(
        f"{storage.redact(href)} holds no item with a '{CLASS_MAP_ASSET}' or '{CHANGE_ASSET}' asset",
        fix="pass the catalog.json written by `deep-lulc predict` or `deep-lulc change`",
    )


def read_metrics(href: str) -> tuple[pystac.Item, dict[str, Any]]:
    """The evaluation item under `href` and its metrics document, checked against the size it was written with."""
    items = [item for item in items_of(read_stac(href)) if METRICS_ASSET in item.assets]
    if not items:
        raise BadInputError(
            f"{storage.redact(href)} holds no evaluation item",
            fix="pass the catalog.json written by `deep-lulc evaluate`",
        )
    item = items[0]
    asset = item.assets[METRICS_ASSET]
    metrics_href = asset.get_absolute_href() or asset.href
    recorded = Recorded.of(asset)
    require_file(
        metrics_href,
        size=recorded.size,
        what=f"the metrics of {item.id}",
        fix="restore the file or re-run `deep-lulc evaluate`",
        checksum=recorded.checksum,
    )
    metrics = storage.read_json(metrics_href, what=f"the metrics of {item.id}")
    return item, metrics

"""The error map of an evaluation: where the map agrees with its labels and where it does not.

Scores say how wrong a map is; only a map says where. The error COG carries a colour table and nodata
on the pixels without labels, so QGIS or a STAC browser shows it as it is meant, and the labels are
sampled on the same lattice as the errors so the two previews line up with the prediction's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pystac

from deep_lulc.shared.class_maps import ClassMapWriter, Grid, PreviewSampler, legend_png
from deep_lulc.shared.classes import LulcClass
from deep_lulc.shared.cog import COG_MEDIA_TYPE
from deep_lulc.shared.preview import PNG_MEDIA_TYPE

NO_LABEL, CORRECT, WRONG, NOT_MAPPED = 0, 1, 2, 3
ERROR_CLASSES = (
    LulcClass(CORRECT, "correct", "The map agrees with the label", "#1a9850"),
    LulcClass(WRONG, "wrong", "The map disagrees with the label", "#d73027"),
    LulcClass(NOT_MAPPED, "not_mapped", "Labelled, but the map has no data there", "#9e9e9e"),
)
ERRORS_FILE, ERRORS_PREVIEW_FILE, LABELS_PREVIEW_FILE = "errors.tif", "errors.png", "labels.png"
UNCHANGED_VALUE = 255  # the labels preview of a change map: above every class value, so it cannot collide
UNCHANGED_COLOUR = "#d3d3d3"


def error_codes(labelled: np.ndarray, mapped: np.ndarray, right: np.ndarray) -> np.ndarray:
    """uint8 error codes from three masks of one window: has a label, has a prediction, they agree."""
    codes = np.full(labelled.shape, NO_LABEL, dtype=np.uint8)
    codes[labelled & mapped & right] = CORRECT
    codes[labelled & mapped & ~right] = WRONG
    codes[labelled & ~mapped] = NOT_MAPPED
    return codes


class ErrorMap:
    """The error COG written window by window, with aligned samples of it and of the labels for previews."""

    def __init__(self, folder: Path, grid: Grid, *, label_fill: int) -> None:
        self.folder = folder
        self.writer = ClassMapWriter(folder / ERRORS_FILE, grid, nodata=NO_LABEL, colormap=colormap())
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

    def finish(self, *, title: str, label_classes: list[LulcClass], label_nodata: int) -> dict[str, pystac.Asset]:
        """Publish the COG and both previews; returns the item's new assets by key."""
        self.writer.finish()
        legend_png(self.errors.values, list(ERROR_CLASSES), self.folder / ERRORS_PREVIEW_FILE,
                   title=f"Errors: {title}", nodata=NO_LABEL)  # fmt: skip
        legend_png(self.labels.values, label_classes, self.folder / LABELS_PREVIEW_FILE,
                   title=f"Labels: {title}", nodata=label_nodata)  # fmt: skip
        return {
            "errors": pystac.Asset(
                str(self.folder / ERRORS_FILE),
                title="Error map: 1 correct, 2 wrong, 3 labelled but not mapped (nodata 0: no label)",
                media_type=COG_MEDIA_TYPE,
                roles=["data"],
                extra_fields={
                    "classification:classes": self.classification(),
                    "raster:bands": [{"nodata": NO_LABEL, "data_type": "uint8"}],
                },
            ),
            "errors_preview": pystac.Asset(str(self.folder / ERRORS_PREVIEW_FILE), title="Error map preview",
                                           media_type=PNG_MEDIA_TYPE, roles=["overview", "visual"]),
            "labels_preview": pystac.Asset(str(self.folder / LABELS_PREVIEW_FILE),
                                           title="Reference labels as rasterised for scoring",
                                           media_type=PNG_MEDIA_TYPE, roles=["overview", "visual"]),
        }  # fmt: skip

    def classification(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = [
            {"value": NO_LABEL, "name": "no_label", "description": "No reference label", "nodata": True}
        ]
        for cls in ERROR_CLASSES:
            listed.append({**cls.to_classification(), "count": int(self.counts[cls.value])})
        return listed

    def summary(self) -> dict[str, int]:
        return {cls.name: int(self.counts[cls.value]) for cls in ERROR_CLASSES}


def colormap() -> dict[int, tuple[int, int, int, int]]:
    return {NO_LABEL: (255, 255, 255, 0), **{c.value: (*c.rgb, 255) for c in ERROR_CLASSES}}

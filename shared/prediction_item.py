"""The prediction item: what `predict` (whole map or one tile) and `merge` publish, in one shape."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from rasterio.transform import array_bounds
from shapely.geometry import mapping

from deep_lulc.shared.class_maps import (
    CLASSIFICATION_EXTENSION,
    PROJECTION_EXTENSION,
    RASTER_EXTENSION,
    ClassMapWriter,
    Grid,
    class_map_asset,
    colormap_of,
    decimated,
    legend_png,
)
from deep_lulc.shared.classes import ClassScheme
from deep_lulc.shared.cog import COG_MEDIA_TYPE
from deep_lulc.shared.geometry import bounds_to_wgs84
from deep_lulc.shared.preview import thumbnail_asset
from deep_lulc.shared.stac import stamp_provenance

CLASSES_FILE = "classes.tif"
PROBABILITIES_FILE = "probabilities.tif"
PREVIEW_FILE = "preview.png"
PROBABILITY_NODATA = 255
PROBABILITY_SCALE = 0.01


class PredictionWriters:
    """The class COG and, optionally, the probability COG of one prediction, filled block by block."""

    def __init__(self, folder: Path, grid: Grid, scheme: ClassScheme, *, probabilities: bool) -> None:
        self.scheme = scheme
        self.labelled = [c.value for c in scheme.labelled]
        self.class_pixels = np.zeros(256, dtype=np.int64)
        self.classes = ClassMapWriter(folder / CLASSES_FILE, grid, nodata=scheme.nodata, colormap=colormap_of(scheme))
        self.probabilities = (
            ClassMapWriter(
                folder / PROBABILITIES_FILE, grid, nodata=PROBABILITY_NODATA, count=len(self.labelled),
                band_descriptions=[c.name for c in scheme.labelled], scale=PROBABILITY_SCALE,
            )
            if probabilities
            else None
        )  # fmt: skip

    def write_classes(self, classes: np.ndarray, *, row: int, col: int) -> None:
        self.class_pixels += np.bincount(classes.ravel(), minlength=256)
        self.classes.write(classes, row=row, col=col)

    def write_probabilities(self, percent: np.ndarray, *, row: int, col: int) -> None:
        if self.probabilities is not None:
            self.probabilities.write(percent, row=row, col=col)

    def finish(self) -> None:
        self.classes.finish()
        if self.probabilities is not None:
            self.probabilities.finish(overview_resampling="average")

    def abandon(self) -> None:
        self.classes.abandon()
        if self.probabilities is not None:
            self.probabilities.abandon()

    def pixel_counts(self) -> dict[str, int]:
        return {c.name: int(self.class_pixels[c.value]) for c in self.scheme.labelled if self.class_pixels[c.value]}


def percent(probabilities: np.ndarray, labelled: list[int], observed: np.ndarray) -> np.ndarray:
    """uint8 percent per labelled class; 255 where there was no observation."""
    values = np.round(probabilities[labelled] * 100).astype(np.uint8)
    values[:, ~observed] = PROBABILITY_NODATA
    return values


def prediction_item(
    identifier: str,
    *,
    folder: Path,
    grid: Grid,
    scheme: ClassScheme,
    period: tuple[str, str],
    derived_from: list[str],
    properties: Mapping[str, Any],
    class_pixels: Mapping[str, int],
    probabilities: bool,
) -> pystac.Item:
    """An item whose `classes` asset is the map, with a legend preview written beside it."""
    bounds = array_bounds(grid.height, grid.width, grid.transform)
    west, south, east, north = bounds[0], bounds[1], bounds[2], bounds[3]
    footprint = bounds_to_wgs84(grid.epsg, (west, south, east, north))
    with rasterio.open(folder / CLASSES_FILE) as dataset:
        overview = decimated(dataset)
    legend_png(overview, list(scheme.classes), folder / PREVIEW_FILE, title=identifier, nodata=scheme.nodata)
    total = max(sum(class_pixels.values()), 1)
    item = pystac.Item(
        id=identifier,
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={
            "start_datetime": period[0],
            "end_datetime": period[1],
            **grid.properties(),
            "deep-lulc:class_fractions": {name: round(count / total, 6) for name, count in class_pixels.items()},
            **properties,
        },
        stac_extensions=[PROJECTION_EXTENSION, CLASSIFICATION_EXTENSION, RASTER_EXTENSION],
    )
    item.add_asset("classes", class_map_asset(str(folder / CLASSES_FILE), scheme=scheme, title="LULC classes"))
    if probabilities:
        item.add_asset(
            "probabilities",
            pystac.Asset(
                str(folder / PROBABILITIES_FILE),
                title="Class probabilities (percent; 255: no observation)",
                media_type=COG_MEDIA_TYPE,
                roles=["data"],
                extra_fields={
                    "raster:bands": [
                        {"name": c.name, "nodata": PROBABILITY_NODATA, "data_type": "uint8",
                         "scale": PROBABILITY_SCALE, "offset": 0}
                        for c in scheme.labelled
                    ]
                },
            ),
        )  # fmt: skip
    item.add_asset("thumbnail", thumbnail_asset(folder / PREVIEW_FILE, title="Predicted classes with legend"))
    stamp_provenance(item, derived_from=derived_from)
    return item

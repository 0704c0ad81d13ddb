"""Ground truth the generator knows: label polygons per period and the two AOIs, as files and STAC items."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import shapely
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.label import LabelClasses, LabelExtension, LabelMethod, LabelTask, LabelType
from shapely.geometry import mapping

from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.io.stac import set_nominal_datetime, stamp_provenance
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.stages.synth.items import footprint_wgs84
from deep_lulc.stages.synth.landscape import Landscape

GEOPACKAGE_MEDIA_TYPE = "application/geopackage+sqlite3"
# GeoPackage stamps the write time into gpkg_contents; a fixed date keeps the same seed byte-identical.
_FIXED_OGR_DATE = "2000-01-01T00:00:00.000Z"

# Pixel windows (fractions of the scene) of the two AOIs: disjoint, each holding a town and a lake.
TRAIN_WINDOW = (0.02, 0.02, 0.56, 0.98)  # left, top, right, bottom
PREDICT_WINDOW = (0.62, 0.02, 0.98, 0.98)


def write_labels(landscape: Landscape, path: Path) -> Path:
    """Parcels as a GeoPackage layer `labels` with the class code in column `lulc`."""
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_OGR_DATE})
    parcels = landscape.parcels
    names = {c.value: c.name for c in SLOVENIA.classes}
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array([p.geometry for p in parcels], dtype=object)),
        field_data=[
            np.array([p.parcel_id for p in parcels], dtype=np.int32),
            np.array([p.lulc for p in parcels], dtype=np.int32),
            np.array([names[p.lulc] for p in parcels], dtype=object),
            np.array([p.cover.value for p in parcels], dtype=object),
        ],
        fields=["parcel_id", "lulc", "lulc_name", "cover"],
        geometry_type="Polygon",
        crs=f"EPSG:{epsg_of(landscape.grid)}",
        driver="GPKG",
        layer="labels",
    )
    return path


def aoi_bounds(grid: GeoBox, window: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """Map bounds of a fractional pixel window, snapped to whole pixels."""
    left, right = round(window[0] * grid.width), round(window[2] * grid.width)
    top, bottom = round(window[1] * grid.height), round(window[3] * grid.height)
    transform = grid.affine
    x0, y0 = transform @ (left, top)
    x1, y1 = transform @ (right, bottom)
    return x0, y1, x1, y0


def write_aoi(grid: GeoBox, window: tuple[float, float, float, float], path: Path, name: str) -> Path:
    """An AOI polygon in EPSG:4326 (GeoJSON's CRS), as users draw them."""
    polygon = footprint_wgs84(grid, aoi_bounds(grid, window))
    document = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": {"name": name}, "geometry": mapping(polygon)}],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def labels_item(landscape: Landscape, *, year: int, labels_path: Path, sources: list[pystac.Item]) -> pystac.Item:
    """A label-extension item for one period's polygons, linked to the acquisitions they describe."""
    footprint = footprint_wgs84(landscape.grid)
    present = sorted({p.lulc for p in landscape.parcels})
    item = pystac.Item(
        id=f"labels-{year}",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={
            "start_datetime": dt.datetime(year, 1, 1, tzinfo=dt.UTC).isoformat().replace("+00:00", "Z"),
            "end_datetime": dt.datetime(year, 12, 31, 23, 59, 59, tzinfo=dt.UTC).isoformat().replace("+00:00", "Z"),
        },
    )
    LabelExtension.ext(item, add_if_missing=True).apply(
        label_description=f"Land use / land cover parcels for {year} (synthetic ground truth)",
        label_type=LabelType.VECTOR,
        label_properties=["lulc"],
        label_classes=[LabelClasses.create(classes=present, name="lulc")],
        label_tasks=[LabelTask.SEGMENTATION, LabelTask.CLASSIFICATION],
        label_methods=[LabelMethod.AUTOMATED],
    )
    asset = pystac.Asset(
        href=str(labels_path), media_type=GEOPACKAGE_MEDIA_TYPE, title=f"LULC parcels {year}", roles=["labels"]
    )
    item.add_asset("labels", asset)
    ClassificationExtension.ext(asset, add_if_missing=True).classes = [
        Classification(fields) for fields in SLOVENIA.to_classification()
    ]
    for source in sources:
        item.add_link(pystac.Link("source", source, media_type=pystac.MediaType.JSON))
    set_nominal_datetime(item)
    stamp_provenance(item)
    return item

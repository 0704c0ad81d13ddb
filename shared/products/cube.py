"""The Sentinel-2 datacube: reflectance (time, band, y, x) and SCL (time, y, x) in a Zarr store, and its item.

The layout (variable names, chunking, datacube and projection fields) is written and read only here, so
the cube stage that makes it and the features stage that reads it agree without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from pystac.extensions.datacube import (
    AdditionalDimension,
    DatacubeExtension,
    Dimension,
    DimensionType,
    HorizontalSpatialDimension,
    HorizontalSpatialDimensionAxis,
    TemporalDimension,
    Variable,
    VariableType,
)

from deep_lulc.shared.geo.grids import GeoBox, epsg_of, write_projection
from deep_lulc.shared.io.stac import iso, period_item
from deep_lulc.shared.products import zarr_store
from deep_lulc.shared.products.zarr_store import Manifest
from deep_lulc.shared.sources import sentinel2

ZARR_NAME = "cube.zarr"
DATA_TITLE = "Reflectance and SCL cube"
BANDS: tuple[str, ...] = sentinel2.REFLECTANCE_BANDS
VARIABLES = ("reflectance", "scl")
MADE_BY = "cube"


class Cube(zarr_store.ZarrProduct):
    """A cube item and its verified store (unpacks as `item, dataset`)."""


def write_store(dataset: xr.Dataset, path: Path, *, grid: GeoBox, chunk_size: int) -> Manifest:
    """Store `reflectance` and `scl` (lazy arrays computed here: loader errors surface from this call) in
    chunks of one frame, every band and `chunk_size` pixels a side, then record the manifest."""
    chunks = {"time": 1, "band": -1, "y": chunk_size, "x": chunk_size}
    stored = zarr_store.georeferenced(dataset.chunk(chunks), grid)
    encoding = {
        "reflectance": {"chunks": (1, len(BANDS), chunk_size, chunk_size)},
        "scl": {"chunks": (1, chunk_size, chunk_size)},
    }
    zarr_store.write_dataset(stored, path, encoding=encoding)
    return zarr_store.record_manifest(path)


def temporal_dimension(times: np.ndarray) -> TemporalDimension:
    dimension = TemporalDimension({})
    dimension.dim_type = DimensionType.TEMPORAL
    dimension.extent = [iso(times[0]), iso(times[-1])]
    dimension.values = [iso(t) for t in times]
    return dimension


def bands_dimension(values: Sequence[str]) -> AdditionalDimension:
    dimension = AdditionalDimension({})
    dimension.dim_type = "bands"
    dimension.values = list(values)
    return dimension


def _spatial_dimension(axis: HorizontalSpatialDimensionAxis, extent: list[float], step: float, epsg: int) -> Dimension:
    dimension = HorizontalSpatialDimension({})
    dimension.dim_type = DimensionType.SPATIAL
    dimension.axis = axis
    dimension.extent = extent
    dimension.step = step
    dimension.reference_system = epsg
    return dimension


def data_variable(dimensions: Sequence[str], description: str, *, auxiliary: bool = False) -> Variable:
    variable = Variable({})
    variable.dimensions = list(dimensions)
    variable.var_type = VariableType.AUXILIARY if auxiliary else VariableType.DATA
    variable.description = description
    return variable


def _datacube(item: pystac.Item, grid: GeoBox, times: np.ndarray) -> None:
    minx, miny, maxx, maxy = grid.boundingbox
    resolution, epsg = grid.affine.a, epsg_of(grid)
    reflectance = data_variable(
        ("time", "band", "y", "x"), "Surface reflectance (scale and offset applied), NaN where no data"
    )
    reflectance.unit = "1"
    scl = data_variable(("time", "y", "x"), "Sen2Cor scene classification (0 = no data)")
    scl.values = sorted(sentinel2.SCL_CLASSES)
    DatacubeExtension.ext(item, add_if_missing=True).apply(
        dimensions={
            "time": temporal_dimension(times),
            "band": bands_dimension(BANDS),
            "y": _spatial_dimension(HorizontalSpatialDimensionAxis.Y, [miny, maxy], -resolution, epsg),
            "x": _spatial_dimension(HorizontalSpatialDimensionAxis.X, [minx, maxx], resolution, epsg),
        },
        variables={"reflectance": reflectance, "scl": scl},
    )


def cube_item(
    identifier: str,
    *,
    geometry: dict[str, Any],
    bbox: Sequence[float],
    start: str,
    end: str,
    grid: GeoBox,
    times: np.ndarray,
    store: Path,
    manifest: Manifest,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """The cube's item: period, grid, datacube fields, the store and its manifest; `properties` are the
    stage's own additions."""
    item = period_item(identifier, geometry, bbox, (start, end))
    write_projection(item, grid)
    _datacube(item, grid, times)
    item.properties.update(properties or {})
    zarr_store.add_store_assets(item, store, title=DATA_TITLE, manifest=manifest)
    return item


def open_cube(href: str) -> Cube:
    """The cube item behind `href` (catalog or item) and its store, checked against its manifest."""
    item, dataset = zarr_store.open_item_store(href, variables=VARIABLES, made_by=MADE_BY)
    return Cube(item, dataset)

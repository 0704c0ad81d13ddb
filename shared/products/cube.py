"""The Sentinel-2 datacube: reflectance (time, band, y, x) and SCL (time, y, x) in a Zarr store, and its item.

The layout (variable names, chunking, datacube and projection fields) and the cube's own item fields
(`CubeRecord`) are written and read only here, so the cube stage that makes it and the features stage that
reads it agree without importing each other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
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
from deep_lulc.shared.io.stac import iso, period_item, stac_id
from deep_lulc.shared.products import zarr_store
from deep_lulc.shared.products.zarr_store import Manifest
from deep_lulc.shared.sources import sentinel2

ZARR_NAME = "cube.zarr"
DATA_TITLE = "Reflectance and SCL cube"
BANDS: tuple[str, ...] = sentinel2.REFLECTANCE_BANDS
VARIABLES = ("reflectance", "scl")
MADE_BY = "cube"
_COLLECTION = "deep-lulc:collection"
_LOADER = "deep-lulc:loader"
_ACQUISITIONS = "deep-lulc:acquisitions"
_FRACTION_DIGITS = 6  # valid fractions are recorded rounded: more digits say nothing about a scene


@dataclass(frozen=True)
class Acquisition:
    """One time step of the cube: a solar day, the source items mosaicked into it, and the share of its
    pixels whose SCL class is valid, so a user sees which dates the features can lean on."""

    datetime: str
    items: tuple[str, ...]
    valid_fraction: float


@dataclass(frozen=True)
class CubeRecord:
    """What the cube's item records of how it was made, beyond its grid and period."""

    collection: str
    loader: str
    acquisitions: tuple[Acquisition, ...]

    def properties(self) -> dict[str, Any]:
        return {
            _COLLECTION: self.collection,
            _LOADER: self.loader,
            _ACQUISITIONS: [
                {
                    "datetime": step.datetime,
                    "items": list(step.items),
                    "valid_fraction": round(float(step.valid_fraction), _FRACTION_DIGITS),
                }
                for step in self.acquisitions
            ],
        }


def cube_record(item: pystac.Item) -> CubeRecord | None:
    """The record `cube_item` wrote; None for an item without one (a cube written by other code)."""
    props = item.properties
    if _COLLECTION not in props or _LOADER not in props or _ACQUISITIONS not in props:
        return None
    acquisitions = tuple(
        Acquisition(str(step["datetime"]), tuple(str(i) for i in step["items"]), float(step["valid_fraction"]))
        for step in props[_ACQUISITIONS]
    )
    return CubeRecord(str(props[_COLLECTION]), str(props[_LOADER]), acquisitions)


def _date(moment: Any) -> dt.date:
    return dt.datetime.fromisoformat(str(moment).replace("Z", "+00:00")).date()


class Cube(zarr_store.ZarrProduct):
    """A cube item and its verified store (unpacks as `item, dataset`)."""

    @property
    def period(self) -> tuple[dt.date, dt.date]:
        """The first and last day the cube was asked to cover (its item's period, not its first and last
        acquisition): date grids derived from it then do not shift with the imagery found."""
        return _date(self.item.properties["start_datetime"]), _date(self.item.properties["end_datetime"])

    @property
    def record(self) -> CubeRecord | None:
        return cube_record(self.item)


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


def cube_id(query: str, start: dt.date, end: dt.date, *, tile: str | None = None) -> str:
    """`cube-<start>-<end>-<digest of query>` (`-tile-<id>` for a tile of it): the same query (source, AOI,
    resolution) gives the same id on every rerun, another AOI or period another one."""
    digest = hashlib.sha256(query.encode()).hexdigest()[:8]
    return stac_id("cube", f"{start:%Y%m%d}", f"{end:%Y%m%d}", digest, *(("tile", tile) if tile else ()))


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
    record: CubeRecord | None = None,
) -> pystac.Item:
    """The cube's item: period, grid, datacube fields, how it was made (`record`, which cubes written
    outside the stage lack), the store and its manifest."""
    item = period_item(identifier, geometry, bbox, (start, end))
    write_projection(item, grid)
    _datacube(item, grid, times)
    if record is not None:
        item.properties.update(record.properties())
    zarr_store.add_store_assets(item, store, title=DATA_TITLE, manifest=manifest)
    return item


def open_cube(href: str) -> Cube:
    """The cube item behind `href` (catalog or item) and its store, checked against its manifest."""
    item, dataset = zarr_store.open_item_store(href, variables=VARIABLES, made_by=MADE_BY)
    return Cube(item, dataset)

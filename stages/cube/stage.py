"""`deep-lulc cube`: search, load onto the AOI's UTM grid, apply radiometry, write a Zarr datacube item."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Sequence

import dask
import numpy as np
import pystac
import xarray as xr
from shapely.geometry import mapping

from deep_lulc.shared.geo import grids
from deep_lulc.shared.io.preview import thumbnail_asset
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.stac import iso, stamp_provenance
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.products import cube as cube_product
from deep_lulc.shared.products.cube import ZARR_NAME, Acquisition, CubeRecord
from deep_lulc.shared.products.tiles import Tile, planned_tile
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.shared.sources.item_search import SceneQuery, find_items
from deep_lulc.shared.sources.scene_selection import SceneInputs, query_from
from deep_lulc.shared.sources.signing import sign_items
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.cube.georef import check_georeferencing
from deep_lulc.stages.cube.loaders import BANDS, SolarDay, group_by_solar_day, load_dn
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.cube.placement import check_aoi_size, cube_grid, items_over, tile_footprint
from deep_lulc.stages.cube.writing import valid_fraction, write_preview, write_store

STAGE = "cube"
PREVIEW_NAME = "preview.png"
log = logging.getLogger(__name__)


def period_bounds(start: dt.date, end: dt.date) -> tuple[str, str]:
    return f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T23:59:59Z"


def to_reflectance(dn: xr.DataArray, days: Sequence[SolarDay]) -> xr.DataArray:
    """DN * scale + offset per time step and band, from each step's first item; 0 DN becomes NaN."""
    scale = np.empty((len(days), len(BANDS)), dtype=np.float32)
    offset = np.empty_like(scale)
    for t, day in enumerate(days):
        for b, band in enumerate(BANDS):
            radiometry = sentinel2.scale_offset(day.items[0], band)
            scale[t, b], offset[t, b] = radiometry.scale, radiometry.offset
    factors = xr.DataArray(scale, dims=("time", "band"), coords={"time": dn.time, "band": dn.band})
    shifts = xr.DataArray(offset, dims=("time", "band"), coords={"time": dn.time, "band": dn.band})
    reflectance = dn.astype(np.float32) * factors + shifts
    return reflectance.where(dn != 0).astype(np.float32)


@contextlib.contextmanager
def dask_scheduler(address: str | None) -> Iterator[None]:
    """Local threads by default; an existing distributed cluster when an address is given."""
    if address is None:
        with dask.config.set(scheduler="threads"):
            yield
        return
    from distributed import Client

    with Client(address, timeout="30s"), dask.config.set(scheduler=None):  # type: ignore[no-untyped-call]
        yield


def load_cube(days: Sequence[SolarDay], grid: grids.GeoBox, params: CubeParams, period: tuple[str, str]) -> xr.Dataset:
    """Reflectance and SCL on the grid, lazy: the source images are read when the store is written."""
    dn, scl = load_dn(days, grid, loader=params.loader, chunk_size=params.chunk_size)
    dataset = xr.Dataset({"reflectance": to_reflectance(dn, days), "scl": scl})
    start, end = period
    dataset.attrs.update({"start_datetime": start, "end_datetime": end, "source": "deep-lulc cube"})
    return dataset


def scenes(query: SceneQuery, tile: Tile | None) -> tuple[list[pystac.Item], Aoi]:
    """The AOI's items and the footprint the cube covers: the AOI's, or the tile's with only the items
    reaching it."""
    items = find_items(query)
    if tile is None:
        return items, query.aoi
    footprint = tile_footprint(tile)
    return items_over(items, footprint, tile), footprint


def identifier_of(query: SceneQuery, params: CubeParams, tile: Tile | None) -> str:
    """The same query gives the same cube id, and each tile of it its own."""
    text = f"{query.source}|{query.collection}|{query.aoi.geometry.wkt}|{params.resolution}"
    return cube_product.cube_id(text, params.start, params.end, tile=tile.id if tile is not None else None)


def log_plan(
    items: Sequence[pystac.Item], days: Sequence[SolarDay], grid: grids.GeoBox, epsg: int, params: CubeParams
) -> None:
    log.info(
        "%d items in %d solar days -> %d x %d px at %g m (EPSG:%d), loader %s",
        len(items),
        len(days),
        grid.width,
        grid.height,
        params.resolution,
        epsg,
        params.loader,
    )


def record_of(collection: str, loader: str, days: Sequence[SolarDay], fractions: np.ndarray) -> CubeRecord:
    acquisitions = tuple(
        Acquisition(iso(day.datetime), tuple(item.id for item in day.items), float(fraction))
        for day, fraction in zip(days, fractions, strict=True)
    )
    return CubeRecord(collection, loader, acquisitions)


@idempotent(STAGE)
def run(*, inputs: SceneInputs, output: str, params: CubeParams) -> StageResult:
    """Build the cube for `inputs.stac` over `inputs.aoi` into `output`."""
    tile = planned_tile(params.tiles, params.tile)  # a bad plan fails before any search
    query = query_from(inputs, params)
    epsg = query.aoi.utm_epsg()
    if tile is None:  # before the search: a grid too large is refused before anything is read
        check_aoi_size(query.aoi, epsg, params)
    found, footprint = scenes(query, tile)
    items = sign_items(found, params.sign)
    days = group_by_solar_day(items)
    grid = cube_grid(query.aoi, epsg, days[0].items[0], tile, params)
    log_plan(items, days, grid, epsg, params)
    check_georeferencing([item for day in days for item in day.items], [*BANDS, sentinel2.SCL_BAND])
    start, end = period_bounds(params.start, params.end)
    dataset = load_cube(days, grid, params, (start, end))
    identifier = identifier_of(query, params, tile)

    with staged_output(output) as staged, dask_scheduler(params.dask_address):
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        store = folder / ZARR_NAME
        manifest = write_store(dataset, store, grid=grid, chunk_size=params.chunk_size, items=items)
        stored = ZarrLocation.at(str(store)).open()
        fractions = valid_fraction(stored["scl"])
        clearest = write_preview(stored, fractions, grid, folder / PREVIEW_NAME)
        item = cube_product.cube_item(
            identifier,
            geometry=mapping(footprint.geometry),
            bbox=footprint.bbox,
            start=start,
            end=end,
            grid=grid,
            times=stored.time.values,
            store=store,
            manifest=manifest,
            record=record_of(query.collection, params.loader, days, fractions),
        )
        clearest_date = iso(stored.time.values[clearest])
        item.add_asset(
            "thumbnail", thumbnail_asset(folder / PREVIEW_NAME, title=f"True colour, clearest date {clearest_date}")
        )
        stamp_provenance(item, derived_from=[i.get_self_href() or i.id for i in items])
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id=identifier,
            description=f"Sentinel-2 datacube {start} to {end} (deep-lulc cube)",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )

    extra = {
        "cube": join_href(output, identifier, ZARR_NAME),
        "shape": [len(days), grid.height, grid.width],
        "epsg": epsg,
        "clearest": clearest_date,
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

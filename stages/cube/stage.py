"""`deep-lulc cube`: search, load onto the AOI's UTM grid, apply radiometry, write a Zarr datacube item."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import dask
import numpy as np
import pystac
import xarray as xr
from rasterio.errors import RasterioIOError
from shapely.geometry import mapping, shape

from deep_lulc.shared.errors import BadInputError, NothingToDoError, TransientError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.io import gdal_env, storage
from deep_lulc.shared.io.cog import open_raster
from deep_lulc.shared.io.preview import preview_stride, thumbnail_asset, true_colour_png
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.stac import iso, stamp_provenance
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.products import cube as cube_product
from deep_lulc.shared.products.cube import ZARR_NAME
from deep_lulc.shared.products.tiles import Tile, planned_tile
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.shared.sources.item_search import find_items
from deep_lulc.shared.sources.scene_selection import SceneInputs, query_from
from deep_lulc.shared.sources.signing import sign_items
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.logs import redact_text
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.cube.georef import check_georeferencing
from deep_lulc.stages.cube.loaders import BANDS, SolarDay, group_by_solar_day, load_dn
from deep_lulc.stages.cube.params import CubeParams

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


def valid_fraction(scl: xr.DataArray, valid_classes: Sequence[int] = sentinel2.DEFAULT_VALID_SCL) -> np.ndarray:
    return np.asarray(scl.isin(list(valid_classes)).mean(dim=("y", "x")).values, dtype=float)


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


def cube_id(query_text: str, start: dt.date, end: dt.date) -> str:
    digest = hashlib.sha256(query_text.encode()).hexdigest()[:8]
    return f"cube-{start:%Y%m%d}-{end:%Y%m%d}-{digest}"


def _first_unreadable(items: Sequence[pystac.Item]) -> str | None:
    """Which asset is damaged: GDAL's read error often names no file, so probe each one's first and last block."""
    from rasterio.windows import Window

    for item in items:
        for band in (*sentinel2.REFLECTANCE_BANDS, sentinel2.SCL_BAND):
            key = sentinel2.asset_key_for(item, band)
            href = item.assets[key].get_absolute_href() or ""
            try:
                with open_raster(href) as source:
                    for row, col in ((0, 0), (source.height - 1, source.width - 1)):
                        source.read(1, window=Window(col, row, 1, 1))
            except (RasterioIOError, RuntimeError):
                return f"asset {key} of {item.id} ({storage.redact(href)})"
    return None


def unreadable_source(exc: Exception, items: Sequence[pystac.Item]) -> BadInputError | TransientError:
    """A damaged or truncated COG is the input's fault: say which one. An outage (a 5xx, a deadline) is not:
    a retry may get past it, so it is transient, naming the host."""
    if gdal_env.is_transient(str(exc)):
        hosts = sorted({urlsplit(item.assets[key].href).netloc for item in items for key in item.assets} - {""})
        return TransientError(
            f"reading the source images from {', '.join(hosts[:2]) or 'their server'} failed: "
            f"{redact_text(str(exc))[:200]}",
            fix="retry later (DEEP_LULC_HTTP_TIMEOUT sets the deadline); if it persists, check the server",
        )
    culprit = _first_unreadable(items) or "a source image"
    return BadInputError(
        f"cannot read {culprit}: {redact_text(str(exc))[:200]}",
        fix="re-fetch or remove the damaged asset, or narrow --start/--end to skip that acquisition",
    )


def tile_footprint(tile: Tile) -> Aoi:
    """The tile's read region in lon/lat, its edges densified so that the reprojected outline stays true."""
    grid = tile.read_grid()
    outline = grid.extent.to_crs("EPSG:4326", resolution=float(grid.resolution.x) * 16)
    return Aoi(outline.geom, source=f"tile {tile.id}")


def items_over(items: Sequence[pystac.Item], footprint: Aoi, tile: Tile) -> list[pystac.Item]:
    """The AOI's items that reach this tile: the others add no pixel to it, and leaving them out keeps a tile's
    reads to its own imagery. Found by the same whole-AOI search as one process, so no item a single cube
    would use is missed."""
    reaching = [
        item for item in items if item.geometry is not None and shape(item.geometry).intersects(footprint.geometry)
    ]
    if not reaching:
        raise NothingToDoError(
            f"none of the AOI's {len(items)} scenes reach tile {tile.id!r}",
            fix="check that --tiles was planned for this --aoi, or widen the date range",
        )
    return reaching


def tile_grid(tile: Tile, whole: grids.GeoBox) -> grids.GeoBox:
    """The tile's pixels, after checking that the plan's grid is the one this AOI's imagery gives."""
    planned = tile.grid()
    if planned is None or not grids.same_grid(planned, whole):
        raise BadInputError(
            f"tile {tile.id!r} was planned on {grids.describe(planned) if planned else 'no recorded grid'}, but this "
            f"AOI's imagery gives {grids.describe(whole)}",
            fix="plan the tiles with `deep-lulc plan-tiles --aoi` on the same --aoi and --resolution as cube",
        )
    return tile.read_grid()


@idempotent(STAGE)
def run(*, inputs: SceneInputs, output: str, params: CubeParams) -> StageResult:
    """Build the cube for `inputs.stac` over `inputs.aoi` into `output`."""
    tile = planned_tile(params.tiles, params.tile)  # a bad plan fails before any search
    query = query_from(inputs, params)
    epsg = query.aoi.utm_epsg()
    if tile is None:  # before the search: a grid too large is refused before anything is read
        west, south, east, north = query.aoi.projected(epsg).bounds
        grids.check_size(
            round((east - west) / params.resolution),
            round((north - south) / params.resolution),
            max_pixels=params.max_pixels,
        )
    items = find_items(query)
    footprint = query.aoi
    if tile is not None:
        footprint = tile_footprint(tile)
        items = items_over(items, footprint, tile)
    items = sign_items(items, params.sign)
    days = group_by_solar_day(items)
    first = days[0].items[0]
    anchor = (0.0, 0.0)
    if sentinel2.epsg_of(first, sentinel2.asset_key_for(first, "B04")) == epsg:
        transform = first.assets[sentinel2.asset_key_for(first, "B04")].extra_fields.get("proj:transform")
        if transform:
            anchor = (float(transform[2]), float(transform[5]))
    grid = grids.snapped_geobox(epsg, query.aoi.projected(epsg).bounds, resolution=params.resolution, anchor=anchor)
    if tile is not None:
        grid = tile_grid(tile, grid)
    grids.check_size(grid.width, grid.height, max_pixels=params.max_pixels)
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
    check_georeferencing([item for day in days for item in day.items], [*BANDS, sentinel2.SCL_BAND])
    dn, scl = load_dn(days, grid, loader=params.loader, chunk_size=params.chunk_size)
    reflectance = to_reflectance(dn, days)
    dataset = xr.Dataset({"reflectance": reflectance, "scl": scl})
    start, end = period_bounds(params.start, params.end)
    dataset.attrs.update({"start_datetime": start, "end_datetime": end, "source": "deep-lulc cube"})
    identifier = cube_id(
        f"{query.source}|{query.collection}|{query.aoi.geometry.wkt}|{params.resolution}", params.start, params.end
    ) + (f"-tile-{tile.id}" if tile is not None else "")

    with staged_output(output) as staged, dask_scheduler(params.dask_address):
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        try:
            manifest = cube_product.write_store(dataset, folder / ZARR_NAME, grid=grid, chunk_size=params.chunk_size)
        except (RasterioIOError, RuntimeError) as exc:
            if not isinstance(exc, RasterioIOError) and "Rasterio" not in str(exc):
                raise
            raise unreadable_source(exc, items) from exc
        stored = ZarrLocation.at(str(folder / ZARR_NAME)).open()
        fractions = valid_fraction(stored["scl"])
        clearest = int(np.argmax(fractions))
        stride = preview_stride(grid.height, grid.width)
        sampled = {"time": clearest, "y": slice(None, None, stride), "x": slice(None, None, stride)}
        rgb = stored["reflectance"].isel(sampled).sel(band=["B04", "B03", "B02"]).values
        true_colour_png(rgb[0], rgb[1], rgb[2], folder / PREVIEW_NAME)

        item = cube_product.cube_item(
            identifier,
            geometry=mapping(footprint.geometry),
            bbox=footprint.bbox,
            start=start,
            end=end,
            grid=grid,
            times=stored.time.values,
            store=folder / ZARR_NAME,
            manifest=manifest,
            properties={
                "deep-lulc:collection": query.collection,
                "deep-lulc:loader": params.loader,
                "deep-lulc:acquisitions": [
                    {
                        "datetime": iso(day.datetime),
                        "items": [i.id for i in day.items],
                        "valid_fraction": round(float(fraction), 6),
                    }
                    for day, fraction in zip(days, fractions, strict=True)
                ],
            },
        )
        clearest_date = iso(stored.time.values[clearest])
        item.add_asset(
            "thumbnail", thumbnail_asset(folder / PREVIEW_NAME, title=f"True colour, clearest date {clearest_date}")
        )
        stamp_provenance(item, derived_from=[i.get_self_href() or i.id for i in items])
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="cube",
            description=f"Sentinel-2 datacube {start} to {end} (deep-lulc cube)",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )

    extra = {
        "cube": join_href(output, identifier, ZARR_NAME),
        "shape": [len(days), grid.height, grid.width],
        "epsg": epsg,
        "clearest": iso(stored.time.values[clearest]),
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

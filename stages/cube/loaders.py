"""Loading Sentinel-2 DN onto the cube grid with odc-stac or stackstac, one time step per solar day.

Both loaders give the same thing: uint16 DN (time, band, y, x) with 0 as nodata, and SCL (time, y, x).
Radiometry is applied afterwards, per time step, from each item's own metadata.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import xarray as xr

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.io import gdal_env
from deep_lulc.shared.sources import providers, sentinel2
from deep_lulc.stages.cube.params import Loader

BANDS: tuple[str, ...] = sentinel2.REFLECTANCE_BANDS


@dataclass(frozen=True)
class SolarDay:
    """The items that make up one time step: same platform pass, possibly several tiles."""

    day: dt.date
    items: tuple[pystac.Item, ...]

    @property
    def datetime(self) -> dt.datetime:
        return min(item.datetime for item in self.items if item.datetime is not None)


def solar_day(item: pystac.Item) -> dt.date:
    """Local solar date at the item's centre: a pass over several UTC days stays one time step."""
    assert item.datetime is not None
    lon = 0.0
    if item.bbox:
        lon = (item.bbox[0] + item.bbox[2]) / 2.0
    return (item.datetime.astimezone(dt.UTC) + dt.timedelta(hours=lon / 15.0)).date()


def group_by_solar_day(items: Sequence[pystac.Item]) -> list[SolarDay]:
    groups: dict[dt.date, list[pystac.Item]] = {}
    for item in items:
        groups.setdefault(solar_day(item), []).append(item)
    return [SolarDay(day, tuple(groups[day])) for day in sorted(groups)]


def asset_keys(items: Sequence[pystac.Item]) -> dict[str, str]:
    """Band id -> asset key, which must be the same for every item (one provider style per cube).

    The keys are resolved through the provider profiles (`sentinel2.asset_key_for`); both loaders ask for
    one key per band across all items, so items keyed like two different profiles cannot share a cube.
    """
    keys = {band: sentinel2.asset_key_for(items[0], band) for band in (*BANDS, sentinel2.SCL_BAND)}
    for item in items[1:]:
        other = {band: sentinel2.asset_key_for(item, band) for band in keys}
        if other != keys:
            raise BadInputError(
                f"items {items[0].id} and {item.id} name their assets differently",
                fix=f"build a cube from one provider's items ({providers.provider_titles()}), not a mix",
            )
    return keys


def native_resolution(item: pystac.Item, key: str) -> float:
    asset = item.assets[key]
    transform = sentinel2.asset_transform(item, key)
    if transform:
        return abs(float(transform[0]))
    gsd = asset.extra_fields.get("gsd") or item.properties.get("gsd")
    return float(gsd) if gsd else 10.0


def resampling_for(item: pystac.Item, key: str, band: str, resolution: float) -> str:
    """Nearest for SCL and same-resolution bands, bilinear when upsampling, average when downsampling."""
    if band == sentinel2.SCL_BAND:
        return "nearest"
    native = native_resolution(item, key)
    if abs(native - resolution) < 1e-6:
        return "nearest"
    return "bilinear" if resolution < native else "average"


def load_dn(
    days: Sequence[SolarDay], grid: GeoBox, *, loader: Loader, chunk_size: int
) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy DN (time, band, y, x) uint16 and SCL (time, y, x) uint8, one step per solar day."""
    items = [item for day in days for item in day.items]
    keys = asset_keys(items)
    options = gdal_env.read_options(
        item.assets[key].get_absolute_href() or "" for item in items for key in keys.values()
    )
    if loader == "odc-stac":
        dn, scl = _load_odc(items, keys, grid, chunk_size, options)
    else:
        dn, scl = _load_stackstac(days, keys, grid, chunk_size, options)
    if dn.sizes["time"] != len(days):
        raise RuntimeError(f"{loader} returned {dn.sizes['time']} time steps for {len(days)} solar days")
    times = np.array([np.datetime64(day.datetime.replace(tzinfo=None), "ns") for day in days])
    return dn.assign_coords(time=times), scl.assign_coords(time=times)


def _load_odc(
    items: list[pystac.Item], keys: dict[str, str], grid: GeoBox, chunk_size: int, options: dict[str, str]
) -> tuple[xr.DataArray, xr.DataArray]:
    import odc.stac

    if options:  # odc-stac's own cloud defaults would shadow what the user set in the environment
        gdal_options: dict[str, Any] = dict(options)
        odc.stac.configure_rio(cloud_defaults=False, **gdal_options)

    resampling = {key: resampling_for(items[0], key, band, grid.affine.a) for band, key in keys.items()}
    config = providers.odc_stac_config(keys)
    dataset = odc.stac.load(
        items,
        bands=list(keys.values()),
        geobox=grid,
        groupby="solar_day",
        resampling=resampling,
        chunks={"time": 1, "x": chunk_size, "y": chunk_size},
        stac_cfg=config,
        fail_on_error=True,
    )
    dn = xr.concat([dataset[keys[band]].astype("uint16") for band in BANDS], dim="band")
    dn = dn.assign_coords(band=list(BANDS)).transpose("time", "band", "y", "x")
    scl = dataset[keys["SCL"]].astype("uint8")
    return _plain_coords(dn, grid), _plain_coords(scl, grid)


def _load_stackstac(
    days: Sequence[SolarDay], keys: dict[str, str], grid: GeoBox, chunk_size: int, options: dict[str, str]
) -> tuple[xr.DataArray, xr.DataArray]:
    import stackstac
    from rasterio.enums import Resampling
    from stackstac.rio_env import LayeredEnv

    rio_env = stackstac.DEFAULT_GDAL_ENV
    if options:  # stackstac keeps datasets open between reads: no per-file block cache while reading
        rio_env = LayeredEnv(always=options, read=gdal_env.without_user_set({"VSI_CACHE": "FALSE"}))

    items = [item for day in days for item in day.items]
    box = grid.boundingbox
    documents = [item.to_dict(transform_hrefs=True) for item in items]
    for document, item in zip(documents, items, strict=True):
        for key, asset in document["assets"].items():
            asset["href"] = item.assets[key].get_absolute_href()
    day_of_item = np.array([str(solar_day(item)) for item in items])

    def stack(bands: list[str], method: str, dtype: str) -> xr.DataArray:
        array = stackstac.stack(
            documents,
            assets=[keys[band] for band in bands],
            epsg=epsg_of(grid),
            resolution=grid.affine.a,
            bounds=(box.left, box.bottom, box.right, box.top),
            resampling=getattr(Resampling, method),
            rescale=False,
            dtype=np.dtype(dtype),
            fill_value=np.dtype(dtype).type(0),
            chunksize=(1, 1, chunk_size, chunk_size),
            snap_bounds=False,
            properties=False,
            band_coords=False,
            gdal_env=rio_env,
        )
        array = array.assign_coords(day=("time", day_of_item))
        mosaics = [stackstac.mosaic(group, dim="time", nodata=0) for _, group in array.groupby("day")]
        mosaic: xr.DataArray = xr.concat(mosaics, dim="time")
        return mosaic

    groups: dict[str, list[str]] = {}
    for band, key in keys.items():
        if band != sentinel2.SCL_BAND:
            groups.setdefault(resampling_for(items[0], key, band, grid.affine.a), []).append(band)
    parts = [stack(bands, method, "uint16").assign_coords(band=bands) for method, bands in groups.items()]
    dn = xr.concat(parts, dim="band").sel(band=list(BANDS)).transpose("time", "band", "y", "x")
    scl = stack([sentinel2.SCL_BAND], "nearest", "uint8").isel(band=0, drop=True)
    return _plain_coords(dn, grid), _plain_coords(scl, grid)


def _plain_coords(array: xr.DataArray, grid: GeoBox) -> xr.DataArray:
    """Drop loader-specific coordinates; give pixel-centre x/y on the cube grid."""
    keep = {"time", "band", "y", "x"}
    array = array.drop_vars([name for name in array.coords if name not in keep])
    left, top, resolution = grid.affine.c, grid.affine.f, grid.affine.a
    x = left + resolution * (np.arange(grid.width) + 0.5)
    y = top - resolution * (np.arange(grid.height) + 0.5)
    if array.sizes["x"] != grid.width or array.sizes["y"] != grid.height:
        raise RuntimeError(f"loader grid {array.sizes['y']}x{array.sizes['x']} != cube grid {grid.height}x{grid.width}")
    plain = array.assign_coords(x=x, y=y)
    plain.attrs = {}  # loader attrs (RasterSpec, Affine) are not serialisable and say nothing the item does not
    return plain

"""Cube catalogs made by code from arrays, written by the cube product as `deep-lulc cube` writes them (for
real-data tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping

from deep_lulc.shared.geo import grids
from deep_lulc.shared.products import cube
from deep_lulc.shared.sources.sentinel2 import REFLECTANCE_BANDS


def write_cube_catalog(
    folder: Path,
    *,
    reflectance: np.ndarray,
    scl: np.ndarray,
    times: list[dt.datetime],
    transform: Affine,
    epsg: int,
    start: dt.date,
    end: dt.date,
) -> str:
    """A one-item catalog whose Zarr asset holds `reflectance` (T, 6, Y, X) and `scl` (T, Y, X)."""
    _, _, height, width = reflectance.shape
    grid = grids.geobox(epsg, transform, height, width)
    x = transform.c + transform.a * (np.arange(width) + 0.5)
    y = transform.f + transform.e * (np.arange(height) + 0.5)
    time = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in times])
    dataset = xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), reflectance.astype(np.float32)),
            "scl": (("time", "y", "x"), scl.astype(np.uint8)),
        },
        coords={"time": time, "band": list(REFLECTANCE_BANDS), "y": y, "x": x},
    )
    item_dir = folder / "cube-test"
    item_dir.mkdir(parents=True)
    store = item_dir / cube.ZARR_NAME
    manifest = cube.write_store(dataset, store, grid=grid, chunk_size=256)  # 256 px chunks, as `deep-lulc cube`
    minx, miny, maxx, maxy = grid.boundingbox
    to_wgs84 = Transformer.from_crs(epsg, 4326, always_xy=True)
    margin = 5 * transform.a  # the footprint covers every pixel centre, whatever the reprojection does
    lons, lats = to_wgs84.transform([minx - margin, maxx + margin], [miny - margin, maxy + margin])
    footprint = box(lons[0], lats[0], lons[1], lats[1])
    item = cube.cube_item(
        "cube-test",
        geometry=mapping(footprint),
        bbox=footprint.bounds,
        start=f"{start.isoformat()}T00:00:00Z",
        end=f"{end.isoformat()}T23:59:59Z",
        grid=grid,
        times=time,
        store=store,
        manifest=manifest,
    )
    catalog = pystac.Catalog(id="cube", description="test cube")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json")

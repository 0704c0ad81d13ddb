"""Cube catalogs made by code from arrays, laid out as `deep-lulc cube` writes them (for real-data tests)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pystac
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine
from pyproj import Transformer
from shapely.geometry import box, mapping

from deep_lulc.shared.sentinel2 import REFLECTANCE_BANDS
from deep_lulc.shared.stac import DATACUBE_EXTENSION, PROJECTION_EXTENSION, iso
from deep_lulc.shared.zarr_items import ZARR_MEDIA_TYPE


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
    x = transform.c + transform.a * (np.arange(width) + 0.5)
    y = transform.f + transform.e * (np.arange(height) + 0.5)
    time = np.array([np.datetime64(t.replace(tzinfo=None), "ns") for t in times])
    dataset = xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), reflectance.astype(np.float32)),
            "scl": (("time", "y", "x"), scl.astype(np.uint8)),
        },
        coords={"time": time, "band": list(REFLECTANCE_BANDS), "y": y, "x": x},
    ).rio.write_crs(f"EPSG:{epsg}")
    item_dir = folder / "cube-test"
    item_dir.mkdir(parents=True)
    chunk = 256  # as `deep-lulc cube` stores it: one frame, every band, 256 x 256 px per chunk
    encoding = {"reflectance": {"chunks": (1, 6, chunk, chunk)}, "scl": {"chunks": (1, chunk, chunk)}}
    dataset.to_zarr(item_dir / "cube.zarr", zarr_format=2, consolidated=True, encoding=encoding)
    minx, maxy = transform.c, transform.f
    maxx, miny = minx + transform.a * width, maxy + transform.e * height
    to_wgs84 = Transformer.from_crs(epsg, 4326, always_xy=True)
    margin = 5 * transform.a  # the footprint covers every pixel centre, whatever the reprojection does
    lons, lats = to_wgs84.transform([minx - margin, maxx + margin], [miny - margin, maxy + margin])
    footprint = box(lons[0], lats[0], lons[1], lats[1])
    item = pystac.Item(
        id="cube-test",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={
            "start_datetime": f"{start.isoformat()}T00:00:00Z",
            "end_datetime": f"{end.isoformat()}T23:59:59Z",
            "proj:code": f"EPSG:{epsg}",
            "proj:shape": [height, width],
            "proj:transform": list(transform)[:6],
            "cube:dimensions": {
                "time": {"type": "temporal", "extent": [iso(time[0]), iso(time[-1])]},
                "band": {"type": "bands", "values": list(REFLECTANCE_BANDS)},
                "x": {"type": "spatial", "axis": "x", "extent": [minx, maxx], "reference_system": epsg},
                "y": {"type": "spatial", "axis": "y", "extent": [miny, maxy], "reference_system": epsg},
            },
        },
        stac_extensions=[PROJECTION_EXTENSION, DATACUBE_EXTENSION],
    )
    item.add_asset("data", pystac.Asset(str(item_dir / "cube.zarr"), media_type=ZARR_MEDIA_TYPE, roles=["data"]))
    catalog = pystac.Catalog(id="cube", description="test cube")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json")

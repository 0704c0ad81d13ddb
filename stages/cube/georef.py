"""Items whose projection metadata contradicts their rasters are refused before the cube is loaded.

The loaders place every pixel by the item's `proj:code` and `proj:transform`, so an item stating the wrong
CRS reads as all NaN and a band whose GeoTIFF origin differs from its item's transform lands shifted: a wrong
cube with exit 0. Each raster's own header is cheap to read (one range request for a remote COG, which
GDAL's cache keeps for the load that follows), so every asset the cube reads is compared with its item.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pystac
from rasterio.errors import RasterioIOError

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.shared.io import gdal_env, storage
from deep_lulc.shared.io.cog import open_raster
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.stage.logs import redact_text

TOLERANCE_PX = 0.01  # origin and pixel size may differ by this share of a pixel (float rounding in JSON)
HEADER_READERS = 8  # header reads run in parallel: remote ones wait on the network, not the CPU
FIX = "correct proj:code / proj:transform of that item (or its asset) to match the file, or remove the item"


def check_georeferencing(items: Sequence[pystac.Item], bands: Sequence[str]) -> None:
    """Bad input naming the first asset whose raster disagrees with its item's CRS or transform."""
    jobs = [(item, sentinel2.asset_key_for(item, band)) for item in items for band in bands]
    with ThreadPoolExecutor(max_workers=HEADER_READERS) as pool:
        problems = [problem for problem in pool.map(lambda job: _contradiction(*job), jobs) if problem]
    if problems:
        more = f" (and {len(problems) - 1} more assets)" if len(problems) > 1 else ""
        raise BadInputError(problems[0] + more, fix=FIX)


def _contradiction(item: pystac.Item, key: str) -> str | None:
    asset = item.assets[key]
    href = asset.get_absolute_href() or asset.href
    stated_epsg = sentinel2.epsg_of(item, key)
    own = sentinel2.asset_transform(item, key)
    stated = own or sentinel2.item_transform(item)
    try:
        with open_raster(href) as raster:
            actual_epsg = raster.crs.to_epsg() if raster.crs is not None else None
            transform = raster.transform
    except (RasterioIOError, OSError) as exc:
        if gdal_env.is_transient(str(exc)):  # an outage: stop here, the load would only wait for it again
            raise TransientError(
                f"reading {storage.redact(href)} failed: {redact_text(str(exc))[:200]}",
                fix="retry later (DEEP_LULC_HTTP_TIMEOUT sets the deadline); if it persists, check the server",
            ) from exc
        return None  # unreadable: the load reports it with the damaged asset's name
    name = f"asset {key} of item {item.id} ({storage.redact(href)})"
    if actual_epsg is not None and actual_epsg != stated_epsg:
        return f"{name} is in EPSG:{actual_epsg} but its item states EPSG:{stated_epsg}"
    if not stated or len(stated) < 6:
        return None
    a, b, c, d, e, f = (float(v) for v in stated[:6])
    size = max(abs(transform.a), abs(transform.e), 1e-12)
    # An item-level transform serves bands of every resolution (10, 20, 60 m): only its origin binds them all.
    scale_off = (
        max(abs(a - transform.a), abs(e - transform.e), abs(b - transform.b), abs(d - transform.d)) if own else 0.0
    )
    origin_off = max(abs(c - transform.c), abs(f - transform.f))
    if scale_off > TOLERANCE_PX * size or origin_off > TOLERANCE_PX * size:
        return (
            f"{name} has origin ({transform.c:.2f}, {transform.f:.2f}) and {transform.a:g} m pixels but its item "
            f"states origin ({c:.2f}, {f:.2f}) and {a:g} m pixels ({origin_off / size:.1f} px apart)"
        )
    return None

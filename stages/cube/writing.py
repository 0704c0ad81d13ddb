"""Writing the cube's store, which is where its lazy loads run (and fail), and its true-colour preview."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pystac
import xarray as xr
from rasterio.errors import RasterioIOError

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.io import gdal_env, storage
from deep_lulc.shared.io.cog import open_raster
from deep_lulc.shared.io.preview import preview_stride, true_colour_png
from deep_lulc.shared.products import cube as cube_product
from deep_lulc.shared.products.zarr_store import Manifest
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.stage.logs import redact_text
from deep_lulc.shared.stage.progress import dask_progress


def write_store(
    dataset: xr.Dataset, path: Path, *, grid: grids.GeoBox, chunk_size: int, items: Sequence[pystac.Item]
) -> Manifest:
    """The store written, its source images read on the way: an unreadable one is named (`unreadable_source`).

    On a terminal, a bar counts the frames written (chunks hold one time step); with `--dask-address` the work
    runs on the cluster's scheduler, which reports on its own dashboard instead."""
    try:
        with dask_progress(layer="store-map", what="cube", unit="frame"):
            return cube_product.write_store(dataset, path, grid=grid, chunk_size=chunk_size)
    except (RasterioIOError, RuntimeError) as exc:
        if not isinstance(exc, RasterioIOError) and "Rasterio" not in str(exc):
            raise
        raise unreadable_source(exc, items) from exc


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


def valid_fraction(scl: xr.DataArray, valid_classes: Sequence[int] = sentinel2.DEFAULT_VALID_SCL) -> np.ndarray:
    return np.asarray(scl.isin(list(valid_classes)).mean(dim=("y", "x")).values, dtype=float)


def write_preview(stored: xr.Dataset, fractions: np.ndarray, grid: grids.GeoBox, path: Path) -> int:
    """The true-colour PNG of the clearest date, read back from the written store; that date's index."""
    clearest = int(np.argmax(fractions))
    stride = preview_stride(grid.height, grid.width)
    sampled = {"time": clearest, "y": slice(None, None, stride), "x": slice(None, None, stride)}
    rgb = stored["reflectance"].isel(sampled).sel(band=["B04", "B03", "B02"]).values
    true_colour_png(rgb[0], rgb[1], rgb[2], path)
    return clearest

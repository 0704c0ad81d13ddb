"""Cloud-optimised GeoTIFFs: writing (internal tiles, overviews, deflate, nodata; deterministic bytes) and opening
local or s3:// rasters through GDAL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.io import MemoryFile

from deep_lulc.shared import storage

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@contextlib.contextmanager
def open_raster(href: str | Path) -> Iterator[Any]:
    """A rasterio dataset for a local path or an s3:// href (GDAL pointed at the same endpoint as fsspec)."""
    with rasterio.Env(**storage.gdal_s3_options()), rasterio.open(href) as dataset:
        yield dataset


def write_cog(
    path: Path,
    data: np.ndarray,
    *,
    transform: Affine,
    epsg: int,
    nodata: float | None,
    overview_resampling: str = "average",
    colormap: dict[int, tuple[int, int, int, int]] | None = None,
    band_descriptions: list[str] | None = None,
    blocksize: int = 256,
    scale: float | None = None,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a COG through GDAL's COG driver.

    Rasters smaller than two tiles (training chips) are written as plain compressed GeoTIFFs.
    """
    array = data[None] if data.ndim == 2 else data
    count, height, width = array.shape
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": array.dtype.name,
        "crs": CRS.from_epsg(epsg),
        "transform": transform,
        "nodata": nodata,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with MemoryFile() as memory, memory.open(**profile) as scratch:
        scratch.write(array)
        if colormap is not None:
            scratch.write_colormap(1, colormap)
        for index, description in enumerate(band_descriptions or [], start=1):
            scratch.set_band_description(index, description)
        if scale is not None:  # readers that honour GDAL's scale (rasterio .scales, QGIS) get physical values
            scratch.scales = (scale,) * count
            scratch.offsets = (0.0,) * count
        predictor = "2" if np.issubdtype(array.dtype, np.integer) else "3"
        if min(height, width) < 2 * blocksize:
            # Too small for tiles and overviews to pay off (COG wants tiles >= 128 px): a compressed plain GeoTIFF.
            rasterio.shutil.copy(scratch, path, driver="GTiff", COMPRESS="DEFLATE", PREDICTOR=predictor)
            return path
        rasterio.shutil.copy(
            scratch,
            path,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR=predictor,
            BLOCKSIZE=str(blocksize),
            OVERVIEW_RESAMPLING=overview_resampling.upper(),
            NUM_THREADS="1",
        )
    return path

"""Cloud-optimised GeoTIFFs: the one writer (window by window or whole; internal tiles, overviews, deflate,
nodata; deterministic bytes) and the one reader (local or s3:// through GDAL, checked against the size its
writer recorded).

A map can be larger than memory, so the writer fills a tiled scratch GeoTIFF beside the output and converts
it to a COG at the end: GDAL's block cache, not the raster's size, bounds the memory that takes. A raster
handed over whole (chips, synthetic scenes) skips the disk and is staged in memory.
"""

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
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from deep_lulc.shared import storage
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.grids import GeoBox, epsg_of, geobox

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
BLOCK = 256

Colormap = dict[int, tuple[int, int, int, int]]


@contextlib.contextmanager
def open_raster(href: str | Path) -> Iterator[Any]:
    """A rasterio dataset for a local path or an s3:// href (GDAL pointed at the same endpoint as fsspec)."""
    with rasterio.Env(**storage.gdal_s3_options()), rasterio.open(href) as dataset:
        yield dataset


def require_file(href: str, *, size: int | None, what: str, fix: str) -> None:
    """Bad input unless `href` exists and, where its writer recorded one, has that size: a lost or truncated
    COG must stop the stage with its name, not surface as a GDAL traceback or as pixels of nodata."""
    fs, path = storage.filesystem_for(href)
    try:
        actual = fs.size(path)
    except FileNotFoundError as exc:
        raise BadInputError(f"{what} {storage.redact(href)} is missing", fix=fix) from exc
    except OSError as exc:
        raise storage.classify_os_error(exc, action=f"reading {what} {storage.redact(href)}") from exc
    if size is not None and actual is not None and int(actual) != size:
        raise BadInputError(
            f"{what} {storage.redact(href)} is {int(actual)} bytes but its item recorded {size} "
            "(truncated or rewritten)",
            fix=fix,
        )


@contextlib.contextmanager
def open_cog(href: str, *, size: int | None, what: str, fix: str) -> Iterator[Any]:
    """`open_raster` after `require_file`; a file GDAL cannot open is bad input naming it."""
    require_file(href, size=size, what=what, fix=fix)
    with contextlib.ExitStack() as stack:
        try:
            dataset = stack.enter_context(open_raster(href))
        except RasterioIOError as exc:
            raise BadInputError(f"{what} {storage.redact(href)} is not a readable GeoTIFF ({exc})", fix=fix) from exc
        yield dataset


class CogWriter:
    """Write a raster on `grid` window by window, then publish it as a COG at `path`.

    Windows may arrive in any order; pixels never written stay nodata. `in_memory` stages the pixels in
    memory instead of a tiled scratch file (for rasters handed over whole); `plain_when_small` writes a
    raster narrower than two blocks as a compressed plain GeoTIFF (tiles and overviews do not pay off there).
    """

    def __init__(
        self,
        path: Path,
        grid: GeoBox,
        *,
        nodata: float | None,
        dtype: str = "uint8",
        count: int = 1,
        colormap: Colormap | None = None,
        band_descriptions: list[str] | None = None,
        scale: float | None = None,
        blocksize: int = BLOCK,
        in_memory: bool = False,
        plain_when_small: bool = False,
    ) -> None:
        self.path = path
        self.grid = grid
        self.blocksize = blocksize
        self.plain_when_small = plain_when_small
        self.predictor = "2" if np.issubdtype(np.dtype(dtype), np.integer) else "3"
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "count": count,
            "dtype": dtype,
            "crs": CRS.from_epsg(epsg_of(grid)),
            "transform": grid.affine,
            "nodata": nodata,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        self.scratch: Path | None = None
        self.memory: MemoryFile | None = None
        if in_memory:
            self.memory = MemoryFile()
            self.dataset = self.memory.open(**profile)
        else:
            self.scratch = path.with_name(path.stem + ".scratch.tif")
            tiling = {"tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK, "compress": "DEFLATE", "sparse_ok": True}
            self.dataset = rasterio.open(self.scratch, "w", **profile, **tiling)
        if colormap is not None:
            self.dataset.write_colormap(1, colormap)
        for index, description in enumerate(band_descriptions or [], start=1):
            self.dataset.set_band_description(index, description)
        if scale is not None:  # readers that honour GDAL's scale (rasterio .scales, QGIS) get physical values
            self.dataset.scales = (scale,) * count
            self.dataset.offsets = (0.0,) * count

    def write(self, values: np.ndarray, *, row: int = 0, col: int = 0) -> None:
        """`values`: (rows, cols) or (bands, rows, cols) placed at pixel (row, col)."""
        array = values[None] if values.ndim == 2 else values
        self.dataset.write(array, window=Window(col, row, array.shape[2], array.shape[1]))

    def finish(self, *, overview_resampling: str = "mode") -> Path:
        """Convert the scratch raster into the COG at `path` (overviews by `overview_resampling`: `mode` keeps
        class codes, `average` suits continuous values)."""
        source: Any = self.dataset
        if self.scratch is not None:
            self.dataset.close()
            source = self.scratch
        try:
            if self.plain_when_small and min(self.grid.height, self.grid.width) < 2 * self.blocksize:
                rasterio.shutil.copy(source, self.path, driver="GTiff", COMPRESS="DEFLATE", PREDICTOR=self.predictor)
            else:
                rasterio.shutil.copy(
                    source,
                    self.path,
                    driver="COG",
                    COMPRESS="DEFLATE",
                    PREDICTOR=self.predictor,
                    BLOCKSIZE=str(self.blocksize),
                    OVERVIEW_RESAMPLING=overview_resampling.upper(),
                    NUM_THREADS="1",
                )
        finally:
            self.abandon()
        return self.path

    def abandon(self) -> None:
        """Drop the scratch raster (the COG, if `finish` wrote it, stays)."""
        if not self.dataset.closed:
            self.dataset.close()
        if self.memory is not None:
            self.memory.close()
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)


def write_cog(
    path: Path,
    data: np.ndarray,
    *,
    transform: Affine,
    epsg: int,
    nodata: float | None,
    overview_resampling: str = "average",
    colormap: Colormap | None = None,
    band_descriptions: list[str] | None = None,
    blocksize: int = BLOCK,
    scale: float | None = None,
) -> Path:
    """Write a whole (bands, rows, cols) or (rows, cols) array with `CogWriter`; rasters smaller than two
    tiles (training chips) become plain compressed GeoTIFFs."""
    array = data[None] if data.ndim == 2 else data
    count, height, width = array.shape
    writer = CogWriter(
        path, geobox(epsg, transform, height, width), nodata=nodata, dtype=array.dtype.name, count=count,
        colormap=colormap, band_descriptions=band_descriptions, scale=scale, blocksize=blocksize, in_memory=True,
        plain_when_small=True,
    )  # fmt: skip
    try:
        writer.write(array)
    except BaseException:
        writer.abandon()
        raise
    return writer.finish(overview_resampling=overview_resampling)

"""Cloud-optimised GeoTIFFs: the one writer (window by window or whole; internal tiles, overviews, deflate,
nodata; deterministic bytes) and the one reader (local or s3:// through GDAL, checked against the size its
writer recorded).

A map can be larger than memory, so the writer fills a tiled scratch GeoTIFF beside the output and converts
it to a COG at the end: GDAL's block cache, not the raster's size, bounds the memory that takes. A raster
handed over whole (chips, synthetic scenes) skips the disk and is staged in memory.

Class maps name their codes for desktop GIS (QGIS shows GDAL category names as the legend). GDAL's GeoTIFF
driver keeps category names and attribute tables in its PAM sidecar (`<file>.aux.xml`), never inside the
TIFF, so the writer lets GDAL write that sidecar itself: the scratch raster is wrapped in a VRT (GDAL's
own XML) that carries the names, and the COG conversion copies them out, leaving the COG's bytes as they were.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Mapping
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

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox
from deep_lulc.shared.io import gdal_env, storage
from deep_lulc.shared.io.integrity import Recorded, verify_file

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
BLOCK = 256

Colormap = dict[int, tuple[int, int, int, int]]
Categories = Mapping[int, str]  # pixel value -> class name: GDAL category names and attribute table rows
SIDECAR_SUFFIX = ".aux.xml"
# GDAL raster attribute table field types and usages (gdal.h: GDALRATFieldType, GDALRATFieldUsage)
_RAT_INTEGER, _RAT_STRING = 0, 2
_RAT_NAME, _RAT_MIN_MAX, _RAT_RED, _RAT_GREEN, _RAT_BLUE, _RAT_ALPHA = 2, 5, 6, 7, 8, 9


def sidecar_of(path: Path) -> Path:
    """GDAL's PAM sidecar of a raster, where GeoTIFF keeps category names and attribute tables."""
    return path.with_name(path.name + SIDECAR_SUFFIX)


@contextlib.contextmanager
def open_raster(href: str | Path) -> Iterator[Any]:
    """A rasterio dataset for a local path or an http(s):// or s3:// href (remote reads get the cloud settings
    of `gdal_env`, GDAL pointed at the same S3 endpoint as fsspec)."""
    with rasterio.Env(**gdal_env.read_options([href])), rasterio.open(href) as dataset:
        yield dataset


def require_file(href: str, *, size: int | None, what: str, fix: str, checksum: str | None = None) -> None:
    """Bad input unless `href` exists and, where its writer recorded them, has that size and content: a lost,
    truncated or altered COG must stop the stage with its name, not surface as a GDAL traceback, as pixels
    of nodata or as a map with a few wrong pixels."""
    verify_file(href, Recorded(size, checksum), what=what, fix=fix)


@contextlib.contextmanager
def open_cog(href: str, *, size: int | None, what: str, fix: str, checksum: str | None = None) -> Iterator[Any]:
    """`open_raster` after `require_file`; a file GDAL cannot open is bad input naming it."""
    require_file(href, size=size, what=what, fix=fix, checksum=checksum)
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
    `categories` name the codes of a one-band class raster; GDAL writes them into the COG's sidecar.
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
        categories: Categories | None = None,
    ) -> None:
        if categories is not None and (count != 1 or not np.issubdtype(np.dtype(dtype), np.integer)):
            raise ValueError("category names need a one-band integer raster")
        if categories is not None and any(value < 0 for value in categories):
            raise ValueError("category values must be non-negative pixel values")
        self.path = path
        self.grid = grid
        self.blocksize = blocksize
        self.plain_when_small = plain_when_small
        self.categories = dict(categories) if categories is not None else None
        self.colormap = colormap
        self.vrt: Path | None = None
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
        elif self.categories is not None and self.memory is not None:
            self.dataset.close()  # the VRT opens the staged pixels by name, so they must be flushed first
            source = self.memory.name
        sidecar_of(self.path).unlink(missing_ok=True)  # a sidecar left by an earlier run would describe other codes
        try:
            if self.categories is not None:
                source = self._with_categories(source)
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

    def _with_categories(self, source: Any) -> Path:
        """A VRT over `source` (written by GDAL) whose band also carries the category names and a thematic
        attribute table (value, class, colour): GDAL's copy of it writes both into the output's sidecar."""
        assert self.categories is not None
        self.vrt = self.path.with_name(self.path.stem + ".scratch.vrt")
        rasterio.shutil.copy(source, self.vrt, driver="VRT")
        tree = ElementTree.parse(self.vrt)
        band = tree.getroot().find("VRTRasterBand")
        if band is None:  # pragma: no cover - GDAL always writes one band element per band
            raise RuntimeError(f"GDAL wrote a VRT without a band for {self.path}")
        band.append(category_names_element(self.categories))
        band.append(attribute_table_element(self.categories, self.colormap))
        tree.write(self.vrt, encoding="utf-8")
        return self.vrt

    def abandon(self) -> None:
        """Drop the scratch raster (the COG, if `finish` wrote it, stays)."""
        if not self.dataset.closed:
            self.dataset.close()
        if self.memory is not None:
            self.memory.close()
        if self.scratch is not None:
            self.scratch.unlink(missing_ok=True)
        if self.vrt is not None:
            self.vrt.unlink(missing_ok=True)


def category_names_element(categories: Categories) -> ElementTree.Element:
    """GDAL's `<CategoryNames>`: one name per pixel value from 0 up, empty for values without a class."""
    element = ElementTree.Element("CategoryNames")
    for value in range(max(categories, default=-1) + 1):
        ElementTree.SubElement(element, "Category").text = categories.get(value, "")
    return element


def attribute_table_element(categories: Categories, colormap: Colormap | None) -> ElementTree.Element:
    """A thematic GDAL raster attribute table: one row per named value with its class and, given a colour
    table, its colour (QGIS 3.30+ classifies a raster from such a table)."""
    fields = [("Value", _RAT_INTEGER, _RAT_MIN_MAX), ("Class", _RAT_STRING, _RAT_NAME)]
    if colormap is not None:
        channels = zip(("Red", "Green", "Blue", "Alpha"), (_RAT_RED, _RAT_GREEN, _RAT_BLUE, _RAT_ALPHA), strict=True)
        fields += [(name, _RAT_INTEGER, usage) for name, usage in channels]
    table = ElementTree.Element("GDALRasterAttributeTable", tableType="thematic")
    for index, (name, kind, usage) in enumerate(fields):
        field = ElementTree.SubElement(table, "FieldDefn", index=str(index))
        ElementTree.SubElement(field, "Name").text = name
        ElementTree.SubElement(field, "Type").text = str(kind)
        ElementTree.SubElement(field, "Usage").text = str(usage)
    for index, value in enumerate(sorted(categories)):
        row = ElementTree.SubElement(table, "Row", index=str(index))
        cells: list[object] = [value, categories[value]]
        if colormap is not None:
            cells += list(colormap.get(value, (0, 0, 0, 0)))
        for cell in cells:
            ElementTree.SubElement(row, "F").text = str(cell)
    return table


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
    categories: Categories | None = None,
) -> Path:
    """Write a whole (bands, rows, cols) or (rows, cols) array with `CogWriter`; rasters smaller than two
    tiles (training chips) become plain compressed GeoTIFFs."""
    array = data[None] if data.ndim == 2 else data
    count, height, width = array.shape
    writer = CogWriter(
        path,
        geobox(epsg, transform, height, width),
        nodata=nodata,
        dtype=array.dtype.name,
        count=count,
        colormap=colormap,
        band_descriptions=band_descriptions,
        scale=scale,
        blocksize=blocksize,
        in_memory=True,
        plain_when_small=True,
        categories=categories,
    )
    try:
        writer.write(array)
    except BaseException:
        writer.abandon()
        raise
    return writer.finish(overview_resampling=overview_resampling)

"""A map read as the strata of a sample: a prediction, a change map or a plain GeoTIFF of class values.

`sample` draws from it and `area` weighs by it, so both read it the same way here: which codes are strata
(a class map's labelled classes, a change map's transitions), how many pixels each holds (counted window by
window: a country-wide map never sits in memory) and the map's value under a point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import rasterio
from rasterio.crs import CRS
from shapely.geometry import mapping

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox, pixel_area_m2
from deep_lulc.shared.geo.windows import blocks
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.cog import open_cog
from deep_lulc.shared.io.stac import iso_utc, items_of, period_item, read_stac, stac_id
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.transitions import CHANGE_ASSET, TransitionCoding, class_indices, scheme_difference
from deep_lulc.shared.products.change import change_map_of
from deep_lulc.shared.products.class_map import CLASS_MAP_ASSET, ClassMap, class_map_of, one_map_item

MapKind = Literal["classes", "transitions"]
COUNT_BLOCK = 1024  # px a side read at a time: 1 MiB of uint8 codes, whatever the map's size
# GDAL's block cache (5 % of RAM by default) would keep every block of a sequential read: a 16k px map's
# whole 256 MiB. Reads here never come back to a block, so a small cache costs nothing.
READ_CACHE_MB = 32
MAP_FIX = "pass a prediction or change catalog/item (deep-lulc predict, merge or change), or a GeoTIFF of class values"
GEOTIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Stratum:
    """One stratum: the raster code, its name, and the category it reports (a class, or a transition)."""

    code: int
    name: str
    index: int  # position among the map's categories (labelled classes, or transitions in code order)


@dataclass(frozen=True)
class StrataMap:
    """A map as strata: the raster to read, its grid and what its codes mean."""

    kind: MapKind
    identifier: str  # the item's id, or the GeoTIFF's file name
    href: str  # the raster
    grid: GeoBox
    scheme: ClassScheme
    strata: tuple[Stratum, ...]
    item: pystac.Item | None
    period: tuple[str, str]
    raster_size: int | None = None
    raster_checksum: str | None = None

    @property
    def coding(self) -> TransitionCoding:
        return TransitionCoding(self.scheme)

    @property
    def pixel_area_m2(self) -> float:
        return pixel_area_m2(self.grid, what="the --map", fix="sample a map on a projected grid (e.g. UTM)")

    @property
    def what(self) -> str:
        return "change map" if self.kind == "transitions" else "class map"

    def product_id(self, prefix: str) -> str:
        """`<prefix>-<map id>` for what `sample` and `area` make of this map: a GeoTIFF's suffix dropped, and
        what STAC ids and file names must not hold replaced."""
        return stac_id(prefix, re.sub(r"\.tiff?$", "", self.identifier, flags=re.IGNORECASE))

    def source_href(self, opened_as: str) -> str:
        """Where a product of this map says it came from: the item's own href, else the href it was opened by;
        a GeoTIFF's file."""
        if self.item is None:
            return self.href
        return self.item.get_self_href() or storage.normalize_href(opened_as)

    def product_item(self, identifier: str, properties: dict[str, Any]) -> pystac.Item:
        """An item of a product of this map: the map's footprint (WGS84) and period, with `properties`."""
        west, south, east, north = self.grid.boundingbox
        footprint = bounds_to_wgs84(epsg_of(self.grid), (west, south, east, north))
        return period_item(identifier, mapping(footprint), footprint.bounds, self.period, properties)

    def by_code(self) -> dict[int, Stratum]:
        return {stratum.code: stratum for stratum in self.strata}

    @contextlib.contextmanager
    def open(self) -> Iterator[Any]:
        cache = {} if "GDAL_CACHEMAX" in os.environ else {"GDAL_CACHEMAX": READ_CACHE_MB}
        with (
            rasterio.Env(**cache),
            open_cog(
                self.href,
                size=self.raster_size,
                what=f"the {self.what} raster of {self.identifier}",
                fix=MAP_FIX,
                checksum=self.raster_checksum,
            ) as dataset,
        ):
            if (dataset.height, dataset.width) != (self.grid.height, self.grid.width):
                raise BadInputError(
                    f"the raster of {self.identifier} is {dataset.width}x{dataset.height} px but its item says "
                    f"{self.grid.width}x{self.grid.height}",
                    fix="re-run the stage that wrote the map",
                )
            yield dataset

    def count(self) -> dict[int, int]:
        """Pixels of every stratum present, read block by block; a code the map does not declare is bad input."""
        known = np.array(sorted(self.by_code()), dtype=np.int64)
        totals = np.zeros(int(known.max()) + 1 if len(known) else 1, dtype=np.int64)
        nodata = self._nodata()
        with self.open() as dataset:
            for window in blocks(self.grid.height, self.grid.width, COUNT_BLOCK):
                codes = np.asarray(dataset.read(1, window=window.rasterio())).astype(np.int64, copy=False)
                self._check_codes(codes, nodata, known)
                codes = codes[codes != nodata]
                totals += np.bincount(codes, minlength=len(totals))[: len(totals)]
        return {int(code): int(totals[code]) for code in known if totals[code] > 0}

    def pixels_at(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column of the pixel under each map coordinate (outside the grid where a point is off it)."""
        cols, rows = ~self.grid.affine * (xs, ys)
        return np.floor(np.asarray(rows)).astype(np.int64), np.floor(np.asarray(cols)).astype(np.int64)

    def values_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The map's code at each (row, col) pixel, one small read per point."""
        values = np.empty(len(rows), dtype=np.int64)
        with self.open() as dataset:
            for index, (row, col) in enumerate(zip(rows, cols, strict=True)):
                window = rasterio.windows.Window(int(col), int(row), 1, 1)
                values[index] = int(dataset.read(1, window=window)[0, 0])
        return values

    def _nodata(self) -> int:
        return 0 if self.kind == "transitions" else self.scheme.nodata

    def _check_codes(self, codes: np.ndarray, nodata: int, known: np.ndarray) -> None:
        if self.kind == "classes":
            class_indices(codes, self.scheme, what=f"the --map {self.identifier}")
            return
        bad = (codes != nodata) & ~np.isin(codes, known)
        if bad.any():
            found = sorted({int(v) for v in np.unique(codes[bad])})
            raise BadInputError(
                f"the change map {self.identifier} holds codes {found[:20]} beyond its transition code",
                fix="pass a change map written by `deep-lulc change`",
            )


def open_strata_map(href: str, *, classes: str | None) -> StrataMap:
    """The map at `href`: a STAC catalog or item holding a change or class map, or a plain GeoTIFF whose
    scheme `classes` names (the default scheme when it is not given)."""
    if urlpath_suffix(href) in GEOTIFF_SUFFIXES:
        return _geotiff(href, load_class_scheme(classes))
    items = list(items_of(read_stac(href)))
    changes = [item for item in items if CHANGE_ASSET in item.assets]
    maps = changes or [item for item in items if CLASS_MAP_ASSET in item.assets]
    item = one_map_item(href, maps, what="change map" if changes else "map")
    if item is not None and changes:
        class_map, coding = change_map_of(item)
        return _checked(_of_item(class_map, "transitions", coding.scheme), classes)
    if item is not None:
        class_map = class_map_of(item)
        return _checked(_of_item(class_map, "classes", class_map.scheme), classes)
    raise BadInputError(f"{storage.redact(href)} holds no class map or change map", fix=MAP_FIX)


def urlpath_suffix(href: str) -> str:
    path = href.split("?", 1)[0].split("#", 1)[0]
    return Path(path).suffix.lower()


def strata_of(kind: MapKind, scheme: ClassScheme) -> tuple[Stratum, ...]:
    """A class map's strata are its labelled classes; a change map's are its transitions (`A_to_B`)."""
    if kind == "classes":
        return tuple(Stratum(c.value, c.name, index) for index, c in enumerate(scheme.labelled))
    coding = TransitionCoding(scheme)
    return tuple(Stratum(code, coding.name(code), code - 1) for code in range(1, coding.codes))


def _of_item(class_map: ClassMap, kind: MapKind, scheme: ClassScheme) -> StrataMap:
    item = class_map.item
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    return StrataMap(
        kind=kind,
        identifier=item.id,
        href=class_map.href,
        grid=class_map.grid,
        scheme=scheme,
        strata=strata_of(kind, scheme),
        item=item,
        period=(_iso(start), _iso(end)),
        raster_size=class_map.raster.size,
        raster_checksum=class_map.raster.checksum,
    )


def _checked(found: StrataMap, classes: str | None) -> StrataMap:
    """A scheme given with --classes must be the map's own (its colours may differ)."""
    if classes is None:
        return found
    difference = scheme_difference(load_class_scheme(classes), found.scheme)
    if difference:
        raise BadInputError(
            f"--classes {classes} does not match the --map's class scheme ({difference})",
            fix="leave out --classes for a STAC map (its item says its classes), or pass its own scheme",
        )
    return found


def _geotiff(href: str, scheme: ClassScheme) -> StrataMap:
    """A plain one-band GeoTIFF of class values; its date is its TIFF DATETIME tag, else the file's time."""
    with open_cog(href, size=None, what="the --map GeoTIFF", fix=MAP_FIX) as dataset:
        if dataset.count != 1:
            raise BadInputError(
                f"the --map GeoTIFF {storage.redact(href)} has {dataset.count} bands",
                fix="pass one band of class values",
            )
        if dataset.crs is None or CRS(dataset.crs).to_epsg() is None:
            raise BadInputError(
                f"the --map GeoTIFF {storage.redact(href)} has no EPSG CRS", fix="write it with its CRS (e.g. UTM)"
            )
        if not np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer):
            raise BadInputError(
                f"the --map GeoTIFF {storage.redact(href)} holds {dataset.dtypes[0]} values, not class codes",
                fix="pass a raster of integer class values",
            )
        grid = geobox(int(CRS(dataset.crs).to_epsg()), dataset.transform, dataset.height, dataset.width)
        stamp = dataset.tags().get("TIFFTAG_DATETIME")
    epsg_of(grid)
    when = _tiff_time(stamp) or _file_time(href)
    name = Path(href.split("?", 1)[0]).name
    return StrataMap(
        kind="classes",
        identifier=name,
        href=storage.normalize_href(href),
        grid=grid,
        scheme=scheme,
        strata=strata_of("classes", scheme),
        item=None,
        period=(_iso(when), _iso(when)),
    )


def _tiff_time(stamp: str | None) -> dt.datetime | None:
    if not stamp:
        return None
    try:
        return dt.datetime.strptime(stamp.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _file_time(href: str) -> dt.datetime:
    if storage.is_remote(href):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(Path(storage.normalize_href(href)).stat().st_mtime, tz=dt.UTC).replace(
        microsecond=0
    )


def _iso(moment: dt.datetime | None) -> str:
    if moment is None:
        raise BadInputError("the --map's item has no datetime", fix=MAP_FIX)
    return iso_utc(moment)

"""Areas of interest: a bbox string in EPSG:4326 or any OGR-readable vector file, reduced to one geometry.

The geometry is kept in EPSG:4326 (what STAC searches take) and projected onto the UTM zone of its
centroid for pixel grids, as Sentinel-2 tiles are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
from pyproj import CRS, Transformer
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.geometry import format_bbox
from deep_lulc.shared.io import storage

MAX_LONGITUDE_SPAN = 180.0  # degrees: a wider AOI crosses the antimeridian, or is no area one UTM grid can hold
ANTIMERIDIAN_FIX = (
    "split the AOI at 180 degrees and run each side on its own (each side gets its own UTM grid); "
    "a GeoJSON that crosses must be split there anyway (RFC 7946, 3.1.9)"
)
_BBOX = re.compile(r"^\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*,\s*(-?[\d.]+)\s*$")


@dataclass(frozen=True)
class Aoi:
    geometry: BaseGeometry  # EPSG:4326, lon/lat
    source: str

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        minx, miny, maxx, maxy = self.geometry.bounds
        return float(minx), float(miny), float(maxx), float(maxy)

    def utm_epsg(self) -> int:
        """EPSG code of the WGS 84 UTM zone holding the AOI's centroid."""
        centroid = self.geometry.centroid
        zone = min(60, max(1, math.floor((centroid.x + 180.0) / 6.0) + 1))
        return int((32600 if centroid.y >= 0 else 32700) + zone)

    def projected(self, epsg: int) -> BaseGeometry:
        transformer = Transformer.from_crs(4326, epsg, always_xy=True)
        return shapely.transform(self.geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def load_aoi(spec: str) -> Aoi:
    """Parse `minx,miny,maxx,maxy` (EPSG:4326) or read a vector file (any CRS) into an `Aoi`."""
    match = _BBOX.match(spec)
    if match:
        minx, miny, maxx, maxy = (float(v) for v in match.groups())
        if minx > maxx and -180 <= maxx < minx <= 180 and -90 <= miny < maxy <= 90:
            raise BadInputError(
                f"AOI bbox {spec!r} crosses the antimeridian (west {minx} > east {maxx})", fix=ANTIMERIDIAN_FIX
            )
        if not (-180 <= minx < maxx <= 180 and -90 <= miny < maxy <= 90):
            raise BadInputError(
                f"AOI bbox {spec!r} is not a valid lon/lat box",
                fix="give minx,miny,maxx,maxy in EPSG:4326 degrees with min < max",
            )
        return _on_one_side(Aoi(box(minx, miny, maxx, maxy), source="bbox"))
    return _on_one_side(_read_vector(spec))


def _on_one_side(aoi: Aoi) -> Aoi:
    """Refuse an AOI whose longitudes span more than 180 degrees: planar geometry reads a polygon from 179.5 E
    to 179.5 W as 359 degrees wide, which would search and grid the wrong half of the planet."""
    minx, miny, maxx, maxy = aoi.bbox
    if not all(math.isfinite(v) for v in aoi.bbox):
        raise BadInputError(f"AOI {aoi.source} has coordinates that are not numbers", fix="fix the AOI's geometry")
    if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
        raise BadInputError(
            f"AOI {aoi.source} ({format_bbox(aoi.bbox)}) lies outside lon/lat range",
            fix="give the AOI in EPSG:4326 degrees, or declare its CRS in the file",
        )
    if maxx - minx > MAX_LONGITUDE_SPAN:
        raise BadInputError(
            f"AOI {aoi.source} spans {maxx - minx:.1f} degrees of longitude ({format_bbox(aoi.bbox)}): it crosses "
            "the antimeridian or is wider than one grid can hold",
            fix=ANTIMERIDIAN_FIX,
        )
    return aoi


def _read_vector(href: str) -> Aoi:
    href = storage.normalize_href(href)
    source = storage.local_or_buffer(href, what="AOI file", fix="pass an existing vector file or a lon/lat bbox")
    try:
        meta, _, geometry, _ = pyogrio.raw.read(source)
    except Exception as exc:  # pyogrio raises DataSourceError/DataLayerError subclasses of its own
        raise BadInputError(
            f"cannot read AOI {storage.redact(href)} as a vector file: {exc}",
            fix="use GeoJSON, GeoPackage, Shapefile or FlatGeobuf, or a bbox minx,miny,maxx,maxy",
        ) from exc
    geometries = [g for g in shapely.from_wkb(geometry) if g is not None and not g.is_empty]
    if not geometries:
        raise BadInputError(f"AOI {storage.redact(href)} holds no geometry", fix="draw at least one polygon")
    crs_text = meta.get("crs")
    if not crs_text:
        raise BadInputError(
            f"AOI {storage.redact(href)} declares no CRS (a Shapefile without .prj?)",
            fix="add the .prj file or save the AOI as GeoJSON in EPSG:4326",
        )
    merged = shapely.make_valid(shapely.union_all(geometries))
    crs = CRS.from_user_input(crs_text)
    if crs.to_epsg() != 4326:
        transformer = Transformer.from_crs(crs, 4326, always_xy=True)
        merged = shapely.transform(merged, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    if merged.area == 0:
        raise BadInputError(f"AOI {storage.redact(href)} has no area", fix="use polygons, not points or lines")
    return Aoi(merged, source=storage.redact(href))

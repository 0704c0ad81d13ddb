"""Footprints: projected rectangles as EPSG:4326 polygons, densified so their edges follow the projection."""

from __future__ import annotations

import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon, box


def bounds_to_wgs84(epsg: int, bounds: tuple[float, float, float, float], *, segments: int = 8) -> Polygon:
    minx, miny, maxx, maxy = bounds
    ring = np.asarray(box(minx, miny, maxx, maxy).segmentize(max(maxx - minx, maxy - miny) / segments).exterior.coords)
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(ring[:, 0], ring[:, 1])
    return Polygon(np.column_stack([np.round(lon, 7), np.round(lat, 7)]))


def format_bbox(bbox: tuple[float, float, float, float] | list[float]) -> str:
    return "[" + ", ".join(f"{v:.5f}" for v in bbox) + "]"

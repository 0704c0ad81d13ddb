"""Pixel grids as odc-geo `GeoBox`es, and their projection-extension fields.

One grid type serves the cube, the features, chips, class maps and the synthetic scene, so a grid read
from one product's item is the grid another product writes, with no hand-rolled parsing in between.
"""

from __future__ import annotations

import math
from typing import Any

import pyproj
import pystac
from affine import Affine
from odc.geo.geobox import GeoBox
from pystac.extensions.projection import ProjectionExtension

from deep_lulc.shared.errors import BadInputError

__all__ = [
    "GeoBox",
    "epsg_of",
    "geobox",
    "geobox_of",
    "pixel_area_m2",
    "projection_fields",
    "snapped_geobox",
    "write_projection",
]


MAX_GRID_PIXELS = 250_000_000  # 15,811 px square, 25,000 km2 at 10 m: two Sentinel-2 tiles, one node's memory


def check_size(width: int, height: int, *, max_pixels: int) -> None:
    """Bad input for a grid of more than `max_pixels`, before any pixel is read: a resolution typed in
    degrees (0.001) plans a grid of 10^12 pixels that would run for hours and then exhaust the node."""
    if width * height > max_pixels:
        raise BadInputError(
            f"the grid would be {width:,} x {height:,} px ({width * height:,} pixels), over --max-pixels "
            f"{max_pixels:,}",
            fix="check --resolution (metres, not degrees), narrow the AOI, plan tiles with --tiles, or raise "
            "--max-pixels on a node with the memory for it",
        )


def geobox(epsg: int, transform: Affine, height: int, width: int) -> GeoBox:
    return GeoBox((height, width), transform, f"EPSG:{epsg}")


def epsg_of(grid: GeoBox) -> int:
    """The grid's EPSG code; every product grid is an EPSG CRS (UTM in practice)."""
    epsg = grid.crs.epsg if grid.crs is not None else None
    if epsg is None:
        raise BadInputError(f"grid CRS {grid.crs} has no EPSG code", fix="reproject the input to an EPSG CRS")
    return int(epsg)


def pixel_area_m2(
    grid: GeoBox, *, what: str = "the grid", fix: str = "reproject onto a projected grid (e.g. UTM)"
) -> float:
    """Pixel area in square metres, whatever linear unit the CRS uses; areas in degrees² would be meaningless,
    so a geographic grid is bad input (`what` names it in the message)."""
    epsg = epsg_of(grid)
    crs = pyproj.CRS.from_epsg(epsg)
    if crs.is_geographic:
        raise BadInputError(f"{what} is on a geographic grid (EPSG:{epsg}), where pixels have no fixed area", fix=fix)
    metres = float(crs.axis_info[0].unit_conversion_factor)
    a = grid.affine
    return abs(a.a * a.e - a.b * a.d) * metres * metres


def snapped_geobox(
    epsg: int, bounds: tuple[float, float, float, float], *, resolution: float, anchor: tuple[float, float] = (0, 0)
) -> GeoBox:
    """`bounds` snapped outward onto the lattice through `anchor` (a corner of the source pixels), so a grid at
    the sources' native resolution needs no resampling at all."""
    minx, miny, maxx, maxy = bounds
    ax, ay = anchor[0] % resolution, anchor[1] % resolution
    left = math.floor((minx - ax) / resolution) * resolution + ax
    bottom = math.floor((miny - ay) / resolution) * resolution + ay
    right = math.ceil((maxx - ax) / resolution) * resolution + ax
    top = math.ceil((maxy - ay) / resolution) * resolution + ay
    width, height = round((right - left) / resolution), round((top - bottom) / resolution)
    return geobox(epsg, Affine(resolution, 0.0, left, 0.0, -resolution, top), height, width)


def same_grid(a: GeoBox, b: GeoBox) -> bool:
    """The same pixels: CRS, shape and transform, the transform to a micrometre (JSON round trips are exact,
    arithmetic on origins may not be)."""
    return bool(a.crs == b.crs and a.shape == b.shape and a.affine.almost_equals(b.affine, precision=1e-6))


def describe(grid: GeoBox) -> str:
    """`1024 x 1024 px at 520000.00, 5117000.00 (EPSG:32633)`, for messages."""
    return f"{grid.height} x {grid.width} px at {grid.affine[2]:.2f}, {grid.affine[5]:.2f} ({grid.crs})"


def projection_fields(grid: GeoBox) -> dict[str, Any]:
    """The projection-extension fields of an item (or asset) on `grid`, as plain properties."""
    return {
        "proj:code": f"EPSG:{epsg_of(grid)}",
        "proj:shape": [grid.height, grid.width],
        "proj:transform": list(grid.affine)[:6],
        "proj:bbox": list(grid.boundingbox),
    }


def write_projection(target: pystac.Item | pystac.Asset, grid: GeoBox) -> None:
    """Stamp `grid` on an item or asset through pystac's projection extension (which also declares its schema)."""
    if isinstance(target, pystac.Item):
        projection: Any = ProjectionExtension.ext(target, add_if_missing=True)
    else:
        owner = target.owner
        if isinstance(owner, pystac.Item):
            ProjectionExtension.add_to(owner)
        projection = ProjectionExtension.ext(target)
    projection.code = f"EPSG:{epsg_of(grid)}"
    projection.shape = [grid.height, grid.width]
    projection.transform = list(grid.affine)[:6]
    projection.bbox = list(grid.boundingbox)


def geobox_of(target: pystac.Item | pystac.Asset) -> GeoBox:
    """The grid an item (or asset) declares with the projection extension; bad input when it declares none."""
    fields = target.properties if isinstance(target, pystac.Item) else target.extra_fields
    name = target.id if isinstance(target, pystac.Item) else (target.title or target.href)
    try:
        code = str(fields["proj:code"]) if "proj:code" in fields else f"EPSG:{int(fields['proj:epsg'])}"
        authority, _, number = code.partition(":")
        if authority.upper() != "EPSG":
            raise ValueError(f"proj:code {code!r} is not an EPSG code")
        height, width = (int(v) for v in fields["proj:shape"])
        transform = Affine(*(float(v) for v in fields["proj:transform"][:6]))
        return geobox(int(number), transform, height, width)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInputError(
            f"{name} declares no usable grid (proj:code, proj:shape, proj:transform): {exc}",
            fix="pass an item written by a deep-lulc stage, or add the projection extension fields",
        ) from exc

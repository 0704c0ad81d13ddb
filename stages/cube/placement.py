"""Where the cube lies: the grid its pixels are read onto, and for one tile of a plan, the tile's footprint,
pixels and items.

Every grid is refused when too large before a pixel is read: a resolution typed in degrees plans a grid
that would run for hours and then exhaust the node.
"""

from __future__ import annotations

from collections.abc import Sequence

import pystac
from shapely.geometry import shape

from deep_lulc.shared.errors import BadInputError, NothingToDoError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.products.tiles import Tile
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.stages.cube.params import CubeParams


def check_aoi_size(aoi: Aoi, epsg: int, params: CubeParams) -> None:
    """Bad input for an AOI whose grid is too large, from its bounds alone: before the search, so nothing is
    read for a cube that cannot be built."""
    west, south, east, north = aoi.projected(epsg).bounds
    grids.check_size(
        round((east - west) / params.resolution),
        round((north - south) / params.resolution),
        max_pixels=params.max_pixels,
    )


def tile_footprint(tile: Tile) -> Aoi:
    """The tile's read region in lon/lat, its edges densified so that the reprojected outline stays true."""
    grid = tile.read_grid()
    outline = grid.extent.to_crs("EPSG:4326", resolution=float(grid.resolution.x) * 16)
    return Aoi(outline.geom, source=f"tile {tile.id}")


def items_over(items: Sequence[pystac.Item], footprint: Aoi, tile: Tile) -> list[pystac.Item]:
    """The AOI's items that reach this tile: the others add no pixel to it, and leaving them out keeps a tile's
    reads to its own imagery. Found by the same whole-AOI search as one process, so no item a single cube
    would use is missed."""
    reaching = [
        item for item in items if item.geometry is not None and shape(item.geometry).intersects(footprint.geometry)
    ]
    if not reaching:
        raise NothingToDoError(
            f"none of the AOI's {len(items)} scenes reach tile {tile.id!r}",
            fix="check that --tiles was planned for this --aoi, or widen the date range",
        )
    return reaching


def tile_grid(tile: Tile, whole: grids.GeoBox) -> grids.GeoBox:
    """The tile's pixels, after checking that the plan's grid is the one this AOI's imagery gives."""
    planned = tile.grid()
    if planned is None or not grids.same_grid(planned, whole):
        raise BadInputError(
            f"tile {tile.id!r} was planned on {grids.describe(planned) if planned else 'no recorded grid'}, but this "
            f"AOI's imagery gives {grids.describe(whole)}",
            fix="plan the tiles with `deep-lulc plan-tiles --aoi` on the same --aoi and --resolution as cube",
        )
    return tile.read_grid()


def cube_grid(aoi: Aoi, epsg: int, first: pystac.Item, tile: Tile | None, params: CubeParams) -> grids.GeoBox:
    """The AOI's grid on the pixel lattice of the first item's red band, or the tile's part of it."""
    anchor = _anchor(first, epsg)
    grid = grids.snapped_geobox(epsg, aoi.projected(epsg).bounds, resolution=params.resolution, anchor=anchor)
    if tile is not None:
        grid = tile_grid(tile, grid)
    grids.check_size(grid.width, grid.height, max_pixels=params.max_pixels)
    return grid


def _anchor(item: pystac.Item, epsg: int) -> tuple[float, float]:
    """A corner of the item's red-band pixels when it lies in the cube's CRS: a grid through it reads the
    10 m bands at 10 m without resampling. Items in another zone give no such corner."""
    key = sentinel2.asset_key_for(item, "B04")
    if sentinel2.epsg_of(item, key) == epsg:
        transform = sentinel2.asset_transform(item, key)
        if transform:
            return float(transform[2]), float(transform[5])
    return 0.0, 0.0

"""The synthetic scene's pixel grid: a window of a UTM zone 33N Sentinel-2 tile in Slovenia, like the seed's."""

from __future__ import annotations

from dataclasses import dataclass

from affine import Affine

CRS_EPSG = 32633
PIXEL_SIZE_M = 10.0
# Upper-left corner on the 10 m Sentinel-2 grid of tile 33TWM (east of Ljubljana, the seed's area).
ORIGIN_X = 520_000.0
ORIGIN_Y = 5_117_000.0
MGRS_TILE = "33TWM"


@dataclass(frozen=True)
class Grid:
    """A north-up grid; `size` pixels a side at `pixel_size` metres."""

    size: int
    pixel_size: float = PIXEL_SIZE_M
    origin_x: float = ORIGIN_X
    origin_y: float = ORIGIN_Y
    epsg: int = CRS_EPSG

    @property
    def transform(self) -> Affine:
        return Affine(self.pixel_size, 0.0, self.origin_x, 0.0, -self.pixel_size, self.origin_y)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        extent = self.size * self.pixel_size
        return self.origin_x, self.origin_y - extent, self.origin_x + extent, self.origin_y

    def coarsened(self, factor: int) -> Grid:
        return Grid(self.size // factor, self.pixel_size * factor, self.origin_x, self.origin_y, self.epsg)

    def refined(self, factor: int) -> Grid:
        return Grid(self.size * factor, self.pixel_size / factor, self.origin_x, self.origin_y, self.epsg)

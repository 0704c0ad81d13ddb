"""The cube's pixel grid: the AOI's bounding box on its UTM zone, snapped outward to whole pixels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine

from deep_lulc.shared.aoi import Aoi


@dataclass(frozen=True)
class CubeGrid:
    epsg: int
    bounds: tuple[float, float, float, float]  # minx, miny, maxx, maxy, multiples of `resolution`
    resolution: float

    @property
    def width(self) -> int:
        return round((self.bounds[2] - self.bounds[0]) / self.resolution)

    @property
    def height(self) -> int:
        return round((self.bounds[3] - self.bounds[1]) / self.resolution)

    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0.0, self.bounds[0], 0.0, -self.resolution, self.bounds[3])


def grid_for(aoi: Aoi, *, resolution: float, anchor: tuple[float, float] = (0.0, 0.0)) -> CubeGrid:
    """Snap outward onto the lattice through `anchor` (a corner of the source pixels): a cube at the
    native resolution then needs no resampling at all."""
    epsg = aoi.utm_epsg()
    minx, miny, maxx, maxy = aoi.projected(epsg).bounds
    ax, ay = anchor[0] % resolution, anchor[1] % resolution
    snapped = (
        math.floor((minx - ax) / resolution) * resolution + ax,
        math.floor((miny - ay) / resolution) * resolution + ay,
        math.ceil((maxx - ax) / resolution) * resolution + ax,
        math.ceil((maxy - ay) / resolution) * resolution + ay,
    )
    return CubeGrid(epsg=epsg, bounds=snapped, resolution=resolution)

"""Parameters of `deep-lulc cube`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deep_lulc.shared.geo.grids import MAX_GRID_PIXELS
from deep_lulc.shared.products.tiles import TileSelection
from deep_lulc.shared.sources.scene_selection import SceneSelection

Loader = Literal["odc-stac", "stackstac"]


class CubeParams(SceneSelection, TileSelection):
    """Load B02 B03 B04 B08 B11 B12 and SCL onto the AOI's UTM grid as a Zarr datacube item."""

    resolution: float = Field(10.0, gt=0, le=1000, description="Pixel size in metres of the output grid.")
    loader: Loader = Field("odc-stac", description="Library that reads the COGs onto the grid.")
    dask_address: str | None = Field(None, description="Scheduler of an existing dask cluster; default local.")
    chunk_size: int = Field(256, ge=64, le=8192, description="Spatial chunk of the Zarr store, in pixels.")
    max_pixels: int = Field(
        MAX_GRID_PIXELS,
        ge=1,
        description="Refuse a grid of more pixels (width x height) than this before reading anything; the "
        "default, about two Sentinel-2 tiles at 10 m, fits one node. Larger AOIs: plan tiles with --tiles.",
    )

"""`deep-lulc plan-tiles`: split a map's grid into tiles that one pod each builds.

From `--aoi` the grid is the one `cube` puts that AOI on, so the fan-out can start at `cube`: each pod
loads only its tile (core plus read margin), computes its features and predicts its core. From
`--features` the grid is that store's, for a fan-out of `predict` alone.
"""

from __future__ import annotations

from typing import Any

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.products.features import open_features
from deep_lulc.shared.products.tiles import (
    TILES_FIX,
    Tile,
    find_tile,
    plan_tiles,
    read_tiles_file,
    write_tiles_file,
)
from deep_lulc.shared.sources.aoi import load_aoi
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.predict.params import PlanTilesInputs, PlanTilesParams

STAGE = "plan-tiles"
__all__ = ["STAGE", "TILES_FIX", "Tile", "find_tile", "plan_tiles", "read_tiles_file", "run"]


def aoi_grid(aoi_spec: str, *, resolution: float) -> tuple[grids.GeoBox, str]:
    """The grid `cube` builds for this AOI: its UTM zone, its bounds snapped outward onto the 10/20/60 m
    lattice that Sentinel-2 tiles share (origin on whole multiples of the pixel size)."""
    aoi = load_aoi(aoi_spec)
    epsg = aoi.utm_epsg()
    return grids.snapped_geobox(epsg, aoi.projected(epsg).bounds, resolution=resolution), aoi.source


@idempotent(STAGE, file_output=True)
def run(*, inputs: PlanTilesInputs, output: str, params: PlanTilesParams) -> StageResult:
    """Tiles covering the AOI at `inputs.aoi` or the features at `inputs.features`, as JSON to `output`."""
    given = list(inputs.hrefs())
    if len(given) != 1:
        raise BadInputError(
            "plan-tiles needs exactly one of --aoi and --features" + (f" (got {' and '.join(given)})" if given else ""),
            fix="pass --aoi AOI to fan out from cube onward, or --features HREF to fan out predict alone",
        )
    if inputs.aoi is not None:
        grid, source = aoi_grid(inputs.aoi, resolution=params.resolution)
        planned_from = f"aoi {source}"
    elif inputs.features is not None:
        item, _ = open_features(inputs.features)
        grid, planned_from = grids.geobox_of(item), item.id
    tiles = plan_tiles(
        grid.height,
        grid.width,
        tile_size=params.tile_size,
        window=params.window_size,
        overlap=params.overlap,
        grid=grid,
    )
    href = write_tiles_file(output, tiles)
    descriptors: list[dict[str, Any]] = [tile.model_dump(exclude_none=True) for tile in tiles]
    return StageResult(
        stage=STAGE,
        catalog=href,
        items=(planned_from,),
        extra={"tiles": descriptors, "count": len(tiles), "grid": [grid.height, grid.width]},
    )

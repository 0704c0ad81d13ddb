"""What one predict run maps: the whole map's grid, the part of it this run owns (all of it, or one tile's
core), the inference windows that cover that part, and the ids the map and its item get.

Windows sit on the whole map's grid, so tiles blend exactly as one process would; the features may hold
only part of that grid (a fan-out from cube onward), so the run counts windows from their corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import pystac

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, describe, geobox_of, same_grid
from deep_lulc.shared.geo.windows import PixelWindow, Span, window_grid, windows_touching
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.class_map import (
    InferenceWindow,
    PredictionRecord,
    TilePlacement,
    TileRecord,
    grid_record,
    prediction_id,
    prediction_item_id,
)
from deep_lulc.shared.products.tiles import Tile
from deep_lulc.stages.predict.params import PredictParams


@dataclass(frozen=True)
class Region:
    """The part of the whole map one run predicts; `core` and `windows` count from the features' corner."""

    grid: GeoBox  # the whole map's
    whole_core: PixelWindow  # the part this run owns, on `grid`
    core: PixelWindow
    windows: list[PixelWindow]
    window: int
    overlap: int
    tile: Tile | None
    prediction_id: str  # the whole map's, a tile's too

    @property
    def identifier(self) -> str:
        """The item's id: the map's, or its tile's."""
        return prediction_item_id(self.prediction_id, tile=self.tile.id if self.tile else None)

    @property
    def out_grid(self) -> GeoBox:
        """The grid of the COGs this run writes: the owned part of the whole map's grid."""
        rows, cols = self.whole_core.rows, self.whole_core.cols
        return self.grid[rows.start : rows.stop, cols.start : cols.stop]

    @property
    def pixels(self) -> int:
        return self.core.height * self.core.width

    def describe(self) -> str:
        """`64 x 48 px in 6 windows of 32 px (overlap 8)`, for the log."""
        return (
            f"{self.core.width} x {self.core.height} px in {len(self.windows)} windows of {self.window} px "
            f"(overlap {self.overlap})"
        )

    def record(self, model_id: str) -> PredictionRecord:
        """What the item records of how the map was made; a tile's record also says where the tile goes."""
        window = InferenceWindow(size=self.window, overlap=self.overlap)
        grid_fields = grid_record(self.grid)
        if self.tile is None:
            return PredictionRecord(
                model_id=model_id, window=window, prediction_id=self.prediction_id, grid_fields=grid_fields
            )
        return TileRecord(
            model_id=model_id,
            window=window,
            prediction_id=self.prediction_id,
            grid_fields=grid_fields,
            tile=TilePlacement.of(self.tile),
        )


def _whole_grid(tile: Tile, features: GeoBox) -> tuple[GeoBox, PixelWindow]:
    """The map's grid and where the features sit on it: the whole grid (a fan-out of predict alone), or just the
    tile's read region (a fan-out from cube onward, the features built for this tile only)."""
    planned = tile.grid()
    size = (tile.grid_height, tile.grid_width)
    if (features.height, features.width) == size and (planned is None or same_grid(planned, features)):
        return features, PixelWindow.at(0, 0, *size)
    if planned is not None and same_grid(tile.read_grid(), features):
        return planned, tile.read_window
    expected = (
        f"{size[0]} x {size[1]} px"
        if planned is None
        else f"{describe(planned)} (or its tile's {describe(tile.read_grid())})"
    )
    raise BadInputError(
        f"the tiles were planned for {expected}, the features are {describe(features)}",
        fix="run `deep-lulc plan-tiles` on these features, or pass the features built for this tile",
    )


def _tile_and_window(
    params: PredictParams, tile: Tile | None, validated: tuple[int, int] | None
) -> tuple[Tile | None, int, int]:
    """The window: explicit, else the tiles file's, else the one the model's maps were validated with."""
    if tile is None:
        window, overlap = params.window(validated)
        return None, window, overlap
    window, overlap = params.window((tile.window_size, tile.overlap))
    if (window, overlap) != (tile.window_size, tile.overlap):
        raise BadInputError(
            f"--tile-size {window} / --overlap {overlap} differ from the plan's {tile.window_size} / {tile.overlap}; "
            "tiles would not blend like one map",
            fix="leave --tile-size and --overlap out in tile mode (they come from the tiles file)",
        )
    return tile, window, overlap


def plan_region(
    params: PredictParams, planned: Tile | None, features: pystac.Item, model: ModelConfig, *, model_id: str
) -> Region:
    """The region to predict: the whole features grid, or the planned tile's core of the map's grid."""
    features_grid = geobox_of(features)
    grid, held = (features_grid, PixelWindow.at(0, 0, *features_grid.shape))
    if planned is not None:
        grid, held = _whole_grid(planned, features_grid)
    validated = (model.window, model.overlap) if model.window is not None and model.overlap is not None else None
    tile, window, overlap = _tile_and_window(params, planned, validated)
    whole_core = tile.core if tile else PixelWindow(Span(0, grid.height), Span(0, grid.width))
    windows = [
        w.relative_to(held.row, held.col)
        for w in windows_touching(window_grid(grid.height, grid.width, window, overlap), whole_core)
    ]
    whole = prediction_id(model_id, features.id, tile=tile.id if tile else None)
    return Region(
        grid=grid,
        whole_core=whole_core,
        core=whole_core.relative_to(held.row, held.col),
        windows=windows,
        window=window,
        overlap=overlap,
        tile=tile,
        prediction_id=whole,
    )

"""`deep-lulc plan-tiles`: split a features grid into tiles that `predict --tile` handles one pod each.

A tile owns a core region of the map and reads the margin around it that its windows need; the window
grid is the whole raster's, so tiles blend exactly as one process would. The file is a JSON array of
flat objects, ready for Argo's `withParam` (`{{item.id}}`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from deep_lulc.shared import storage
from deep_lulc.shared.contract import StageResult
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.publish import write_file_atomically
from deep_lulc.shared.windows import PixelWindow, Span, window_grid, windows_touching
from deep_lulc.shared.zarr_items import zarr_item
from deep_lulc.stages.predict.params import PlanTilesParams

STAGE = "plan-tiles"
TILE_KEYS = frozenset({"id", "row", "col", "height", "width", "read_row", "read_col", "read_height", "read_width",
                       "window_size", "overlap", "grid_height", "grid_width", "tiles"})  # fmt: skip


@dataclass(frozen=True)
class Tile:
    id: str
    row: int
    col: int
    height: int
    width: int
    read_row: int  # the region its windows read, margins included
    read_col: int
    read_height: int
    read_width: int
    window_size: int
    overlap: int
    grid_height: int
    grid_width: int
    tiles: int  # how many tiles the plan has, so merge can tell when one is missing

    @property
    def core(self) -> PixelWindow:
        return PixelWindow(Span(self.row, self.row + self.height), Span(self.col, self.col + self.width))


def plan_tiles(height: int, width: int, *, tile_size: int, window: int, overlap: int) -> list[Tile]:
    grid = window_grid(height, width, window, overlap)
    cores = [
        PixelWindow(Span(y, min(y + tile_size, height)), Span(x, min(x + tile_size, width)))
        for y in range(0, height, tile_size)
        for x in range(0, width, tile_size)
    ]
    tiles = []
    for core in cores:
        touching = windows_touching(grid, core)
        top, left = min(w.rows.start for w in touching), min(w.cols.start for w in touching)
        bottom, right = max(w.rows.stop for w in touching), max(w.cols.stop for w in touching)
        tiles.append(
            Tile(
                id=f"r{core.rows.start // tile_size:03d}-c{core.cols.start // tile_size:03d}",
                row=core.rows.start, col=core.cols.start, height=core.height, width=core.width,
                read_row=top, read_col=left, read_height=bottom - top, read_width=right - left,
                window_size=window, overlap=overlap, grid_height=height, grid_width=width, tiles=len(cores),
            )
        )  # fmt: skip
    return tiles


def read_tiles_file(href: str) -> list[Tile]:
    fix = "pass the tiles.json written by `deep-lulc plan-tiles`"
    raw = storage.read_bytes(href, what="tiles file")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"tiles file {storage.redact(href)} is not JSON ({exc})", fix=fix) from exc
    if not isinstance(document, list) or not all(isinstance(e, dict) and set(e) == TILE_KEYS for e in document):
        raise BadInputError(f"tiles file {storage.redact(href)} is not a list of tile descriptors", fix=fix)
    return [Tile(**entry) for entry in document]


def find_tile(tiles: list[Tile], identifier: str, *, href: str) -> Tile:
    for tile in tiles:
        if tile.id == identifier:
            return tile
    shown = ", ".join(t.id for t in tiles[:6]) + (" ..." if len(tiles) > 6 else "")
    raise BadInputError(f"tile {identifier!r} is not in {storage.redact(href)}", fix=f"use one of {shown}")


def run(*, inputs: Mapping[str, str], output: str, params: PlanTilesParams) -> StageResult:
    """Tiles covering the features at `inputs['features']`, written as a JSON array to `output`."""
    if "features" not in inputs:
        raise BadInputError("missing input 'features'", fix="pass --features HREF (the features stage's catalog.json)")
    item, dataset = zarr_item(inputs["features"], variables=("features", "valid_count"), made_by="features")
    height, width = int(dataset.sizes["y"]), int(dataset.sizes["x"])
    tiles = plan_tiles(height, width, tile_size=params.tile_size, window=params.window_size, overlap=params.overlap)
    descriptors: list[dict[str, Any]] = [asdict(tile) for tile in tiles]
    href = write_file_atomically(output, (json.dumps(descriptors, indent=1) + "\n").encode("utf-8"))
    return StageResult(
        stage=STAGE,
        catalog=href,
        items=(item.id,),
        extra={"tiles": descriptors, "count": len(tiles), "grid": [height, width]},
    )

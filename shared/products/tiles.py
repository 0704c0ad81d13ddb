"""The tiles file: how a map is split into tiles that one pod each builds (cube, features, predict).

A tile owns a core region of the map's grid and reads the margin around it that its inference windows
need; the window grid is the whole raster's, so tiles blend exactly as one process would. The plan also
records the grid itself (CRS and transform), so a stage given only the AOI's tile can load its imagery
onto exactly the pixels the whole AOI would have. The file is a JSON array of flat objects, ready for
Argo's `withParam` (`{{item.id}}`).
"""

from __future__ import annotations

import json
from typing import Any, Self

from affine import Affine
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox
from deep_lulc.shared.geo.windows import PixelWindow, Span, window_grid, windows_touching
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.stage.contract import StageParams

TILES_FIX = "pass the tiles.json written by `deep-lulc plan-tiles` (a JSON array of its tile objects, unedited)"


class Tile(BaseModel):
    """One entry of a tiles file. Strict, so that a hand-edited or foreign file is refused entry by entry
    rather than predicting a region that does not blend with its neighbours."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str = Field(min_length=1)
    row: int = Field(ge=0)
    col: int = Field(ge=0)
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    read_row: int = Field(ge=0)  # the region its windows read, margins included
    read_col: int = Field(ge=0)
    read_height: int = Field(ge=1)
    read_width: int = Field(ge=1)
    window_size: int = Field(ge=32, multiple_of=32)
    overlap: int = Field(ge=0)
    grid_height: int = Field(ge=1)
    grid_width: int = Field(ge=1)
    tiles: int = Field(ge=1)  # how many tiles the plan has, so merge can tell when one is missing
    # The whole grid's CRS and affine (a, b, c, d, e, f); absent in plans written before they were recorded.
    epsg: int | None = Field(None, ge=1024)
    transform: list[float] | None = Field(None, min_length=6, max_length=6)

    @model_validator(mode="after")
    def _inside_the_grid(self) -> Self:
        grid = f"the {self.grid_height} x {self.grid_width} grid"
        if self.row + self.height > self.grid_height or self.col + self.width > self.grid_width:
            raise ValueError(
                f"its region (rows {self.row}..{self.row + self.height}, cols {self.col}.."
                f"{self.col + self.width}) reaches outside {grid}"
            )
        read_bottom, read_right = self.read_row + self.read_height, self.read_col + self.read_width
        if read_bottom > self.grid_height or read_right > self.grid_width:
            raise ValueError(f"its read region reaches outside {grid}")
        if not (
            self.read_row <= self.row
            and self.read_col <= self.col
            and self.row + self.height <= read_bottom
            and self.col + self.width <= read_right
        ):
            raise ValueError("its read region does not contain its own region")
        if 2 * self.overlap >= self.window_size:
            raise ValueError(f"overlap {self.overlap} is not less than half of window_size {self.window_size}")
        if (self.epsg is None) != (self.transform is None):
            raise ValueError("epsg and transform go together")
        return self

    @property
    def core(self) -> PixelWindow:
        return PixelWindow(Span(self.row, self.row + self.height), Span(self.col, self.col + self.width))

    @property
    def read_window(self) -> PixelWindow:
        return PixelWindow.at(self.read_row, self.read_col, self.read_height, self.read_width)

    def grid(self) -> GeoBox | None:
        """The whole map's grid, when the plan recorded it."""
        if self.epsg is None or self.transform is None:
            return None
        return geobox(self.epsg, Affine(*self.transform), self.grid_height, self.grid_width)

    def read_grid(self) -> GeoBox:
        """The pixels this tile's cube and features must cover: its core and the margin its windows read."""
        whole = self.grid()
        if whole is None:
            raise BadInputError(
                f"tile {self.id!r} comes from a plan that does not record its grid (an older plan-tiles)",
                fix="re-run `deep-lulc plan-tiles` to write a plan with the grid",
            )
        rows, cols = self.read_window.slices
        return whole[rows, cols]


TILES = TypeAdapter(list[Tile])


class TileSelection(StageParams):
    """`--tile ID --tiles F`: the options of a stage that one pod of the fan-out runs for one tile."""

    tile: str | None = Field(None, description="Only this tile of --tiles (one pod of an Argo fan-out).")
    tiles: str | None = Field(None, description="Tiles file written by `deep-lulc plan-tiles`.")

    @model_validator(mode="after")
    def _tile_with_tiles(self) -> Self:
        if (self.tile is None) != (self.tiles is None):
            raise ValueError("--tile and --tiles go together")
        return self


def plan_tiles(
    height: int, width: int, *, tile_size: int, window: int, overlap: int, grid: GeoBox | None = None
) -> list[Tile]:
    """Tiles of `tile_size` pixels over a `height` x `width` grid, each with the read margin its windows need."""
    windows = window_grid(height, width, window, overlap)
    cores = [
        PixelWindow(Span(y, min(y + tile_size, height)), Span(x, min(x + tile_size, width)))
        for y in range(0, height, tile_size)
        for x in range(0, width, tile_size)
    ]
    recorded: dict[str, Any] = {}
    if grid is not None:
        recorded = {"epsg": epsg_of(grid), "transform": [float(v) for v in tuple(grid.affine)[:6]]}
    tiles = []
    for core in cores:
        touching = windows_touching(windows, core)
        top, left = min(w.rows.start for w in touching), min(w.cols.start for w in touching)
        bottom, right = max(w.rows.stop for w in touching), max(w.cols.stop for w in touching)
        tiles.append(
            Tile(
                id=f"r{core.rows.start // tile_size:03d}-c{core.cols.start // tile_size:03d}",
                row=core.rows.start,
                col=core.cols.start,
                height=core.height,
                width=core.width,
                read_row=top,
                read_col=left,
                read_height=bottom - top,
                read_width=right - left,
                window_size=window,
                overlap=overlap,
                grid_height=height,
                grid_width=width,
                tiles=len(cores),
                **recorded,
            )
        )
    return tiles


def write_tiles_file(href: str, tiles: list[Tile]) -> str:
    """The plan as one JSON array, published atomically (Argo reads it whole with `withParam`)."""
    descriptors = [tile.model_dump(exclude_none=True) for tile in tiles]
    return write_file_atomically(href, (json.dumps(descriptors, indent=1) + "\n").encode("utf-8"))


def read_tiles_file(href: str) -> list[Tile]:
    """The tiles of a plan, every entry validated; the first problem is bad input naming its entry."""
    where = f"tiles file {storage.redact(href)}"
    raw = storage.read_bytes(href, what="tiles file")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{where} is not JSON ({exc})", fix=TILES_FIX) from exc
    try:
        tiles = TILES.validate_python(document)
    except ValidationError as exc:
        raise BadInputError(f"{where}: {_first_problem(exc, document)}", fix=TILES_FIX) from exc
    if not tiles:
        raise BadInputError(f"{where} holds no tiles", fix=TILES_FIX)
    ids = [tile.id for tile in tiles]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BadInputError(f"{where} lists tile ids {duplicates} more than once", fix=TILES_FIX)
    return tiles


def _first_problem(error: ValidationError, document: Any) -> str:
    """`entry 3 (id 'r000-c001'): height: Input should be ...`, plus how many more problems there are."""
    problems = error.errors()
    first = problems[0]
    location = list(first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if not location:
        text = f"is not a list of tile objects ({message})"
    else:
        index = location.pop(0)
        entry = document[index] if isinstance(document, list) and isinstance(index, int) else None
        name = f" (id {entry['id']!r})" if isinstance(entry, dict) and isinstance(entry.get("id"), str) else ""
        field = f"{'.'.join(str(part) for part in location)}: " if location else ""
        text = f"entry {index}{name}: {field}{message}"
    more = len(problems) - 1
    return text + (f" ({more} more problem{'s' if more > 1 else ''})" if more else "")


def find_tile(tiles: list[Tile], identifier: str, *, href: str) -> Tile:
    for tile in tiles:
        if tile.id == identifier:
            return tile
    shown = ", ".join(t.id for t in tiles[:6]) + (" ..." if len(tiles) > 6 else "")
    raise BadInputError(f"tile {identifier!r} is not in {storage.redact(href)}", fix=f"use one of {shown}")


def planned_tile(tiles_href: str | None, identifier: str | None) -> Tile | None:
    """The one tile a fan-out pod handles (`--tiles F --tile ID`), read before any other input."""
    if tiles_href is None or identifier is None:
        return None
    return find_tile(read_tiles_file(tiles_href), identifier, href=tiles_href)

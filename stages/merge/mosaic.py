"""The tiles of one plan, read and checked to belong together, then placed on the whole map's grid.

Every check runs before anything is written: a merge either makes the map one process would have made or
fails naming the tile that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox
from deep_lulc.shared.io import storage
from deep_lulc.shared.lulc.classes import ClassScheme
from deep_lulc.shared.products.class_map import (
    TILE_PREDICTION_FIX,
    ClassMap,
    CogAsset,
    PredictionRecord,
    PredictionWriters,
    TilePlacement,
    TileRecord,
    open_class_map,
    tile_record,
)


@dataclass(frozen=True)
class Mosaic:
    """Tile predictions of one map: what they agree on, where each goes, and the record of the merged map."""

    tiles: list[ClassMap]
    placements: list[TilePlacement]
    record: PredictionRecord
    period: tuple[str, str]
    grid: GeoBox
    probabilities: list[CogAsset] | None

    @property
    def scheme(self) -> ClassScheme:
        return self.tiles[0].scheme

    def derived_from(self) -> list[str]:
        """What the tiles came from (features, model), then the tiles themselves."""
        derived = sorted(
            {link.get_absolute_href() or "" for t in self.tiles for link in t.item.links if link.rel == "derived_from"}
        )
        return [*derived, *(t.item.get_self_href() or t.item.id for t in self.tiles)]


def _same(values: list[Any], what: str, hrefs: list[str]) -> Any:
    for value, href in zip(values[1:], hrefs[1:], strict=True):
        if value != values[0]:
            raise BadInputError(
                f"tiles disagree on {what}: {storage.redact(hrefs[0])} has {values[0]!r}, "
                f"{storage.redact(href)} has {value!r}",
                fix=TILE_PREDICTION_FIX,
            )
    return values[0]


def _agreed(tiles: list[ClassMap], records: list[TileRecord], hrefs: list[str]) -> tuple[PredictionRecord, Any]:
    """The whole map's record and period, which every tile must share, as must its classes."""
    grid_fields = _same([r.grid_fields for r in records], "the features grid", hrefs)
    whole = _same([r.prediction_id for r in records], "the prediction", hrefs)
    model_id = _same([r.model_id for r in records], "the model", hrefs)
    window = _same([r.window for r in records], "the window", hrefs)
    _same([t.scheme.to_dict() for t in tiles], "the class scheme", hrefs)
    period = _same(
        [(t.item.properties["start_datetime"], t.item.properties["end_datetime"]) for t in tiles], "the period", hrefs
    )
    record = PredictionRecord(model_id=model_id, window=window, prediction_id=whole, grid_fields=grid_fields)
    return record, period


def _placements(records: list[TileRecord], *, allow_missing: bool) -> list[TilePlacement]:
    """Where each tile goes: each tile once, and all of the plan's unless some may be missing."""
    ids = [r.tile.id for r in records]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BadInputError(f"tiles {duplicates} are given more than once", fix="pass each tile's catalog once")
    planned = records[0].tile.tiles
    if len(ids) < planned and not allow_missing:
        raise BadInputError(
            f"got {len(ids)} of the plan's {planned} tiles", fix="pass every tile's catalog, or --allow-missing"
        )
    return [r.tile for r in records]


def _probabilities_of(tiles: list[ClassMap]) -> list[CogAsset] | None:
    """Every tile's probability COG, checked before anything is written; None unless all tiles have one."""
    found = [tile.probabilities() for tile in tiles]
    present = [asset for asset in found if asset is not None]
    if len(present) < len(tiles):
        return None
    for asset in present:
        asset.verify()
    return present


def read_mosaic(hrefs: list[str], *, allow_missing: bool) -> Mosaic:
    """The tile predictions at `hrefs`, checked to be one plan's tiles of one map."""
    if not hrefs:
        raise BadInputError("no tile predictions given", fix="pass one catalog per tile as arguments")
    tiles = [open_class_map(href, made_by="predict --tile") for href in hrefs]
    records = [tile_record(tile, href=href) for tile, href in zip(tiles, hrefs, strict=True)]
    whole, period = _agreed(tiles, records, hrefs)
    placements = _placements(records, allow_missing=allow_missing)
    return Mosaic(
        tiles=tiles,
        placements=placements,
        record=replace(whole, merged_tiles=tuple(sorted(p.id for p in placements))),
        period=(str(period[0]), str(period[1])),
        grid=tiles[0].whole_grid(),
        probabilities=_probabilities_of(tiles),
    )


def write_mosaic(mosaic: Mosaic, folder: Path) -> dict[str, int]:
    """Each tile's classes (and probabilities) placed into the whole map's COGs in `folder`; the class pixel
    counts of the result."""
    probabilities = mosaic.probabilities
    writers = PredictionWriters(folder, mosaic.grid, mosaic.scheme, probabilities=probabilities is not None)
    try:
        for index, (tile, placement) in enumerate(zip(mosaic.tiles, mosaic.placements, strict=True)):
            with tile.open() as dataset:
                writers.write_classes(np.asarray(dataset.read(1)), row=placement.row, col=placement.col)
            if probabilities is not None:
                with probabilities[index].open() as dataset:
                    writers.write_probabilities(np.asarray(dataset.read()), row=placement.row, col=placement.col)
        writers.finish()
    except BaseException:
        writers.abandon()
        raise
    return writers.pixel_counts()

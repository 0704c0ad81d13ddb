"""`deep-lulc merge`: mosaic the tile predictions of a fan-out into the one map a single process would make.

Tiles own disjoint core regions of one grid, so merging is placement, not blending; every tile is
checked to come from the same features grid, model and classes before anything is written.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.products.class_map import (
    ClassMap,
    CogAsset,
    PredictionWriters,
    grid_of_record,
    open_class_map,
    prediction_item,
)
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.merge.params import MergeInputs, MergeParams

STAGE = "merge"
FIX = "pass the catalogs written by `deep-lulc predict --tile ... --tiles ...` for one plan"
log = logging.getLogger(__name__)


def _tile_of(tile: ClassMap, href: str) -> dict[str, Any]:
    properties = tile.item.properties
    if "deep-lulc:tile" not in properties or "deep-lulc:grid" not in properties:
        raise BadInputError(f"{storage.redact(href)} is not a tile prediction (no deep-lulc:tile)", fix=FIX)
    return dict(properties["deep-lulc:tile"])


def _same(values: list[Any], what: str, hrefs: list[str]) -> Any:
    for value, href in zip(values[1:], hrefs[1:], strict=True):
        if value != values[0]:
            raise BadInputError(
                f"tiles disagree on {what}: {storage.redact(hrefs[0])} has {values[0]!r}, "
                f"{storage.redact(href)} has {value!r}",
                fix=FIX,
            )
    return values[0]


def _probabilities_of(tiles: list[ClassMap]) -> list[CogAsset] | None:
    """Every tile's probability COG, checked before anything is written; None unless all tiles have one."""
    found = [tile.probabilities() for tile in tiles]
    present = [asset for asset in found if asset is not None]
    if len(present) < len(tiles):
        return None
    for asset in present:
        asset.verify()
    return present


@idempotent(STAGE)
def run(*, inputs: MergeInputs, output: str, params: MergeParams) -> StageResult:
    """Mosaic the tile predictions `inputs.tiles` into one prediction under `output`."""
    hrefs = list(inputs.tiles)
    if not hrefs:
        raise BadInputError("no tile predictions given", fix="pass one catalog per tile as arguments")
    tiles = [open_class_map(href, made_by="predict --tile") for href in hrefs]
    descriptors = [_tile_of(tile, href) for tile, href in zip(tiles, hrefs, strict=True)]
    grid_properties = _same([t.item.properties["deep-lulc:grid"] for t in tiles], "the features grid", hrefs)
    whole = _same([t.item.properties["deep-lulc:prediction_id"] for t in tiles], "the prediction", hrefs)
    model_id = _same([t.item.properties["deep-lulc:model"] for t in tiles], "the model", hrefs)
    window = _same([t.item.properties["deep-lulc:window"] for t in tiles], "the window", hrefs)
    scheme = tiles[0].scheme
    _same([t.scheme.to_dict() for t in tiles], "the class scheme", hrefs)
    period = _same(
        [(t.item.properties["start_datetime"], t.item.properties["end_datetime"]) for t in tiles], "the period", hrefs
    )
    ids = [d["id"] for d in descriptors]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise BadInputError(f"tiles {duplicates} are given more than once", fix="pass each tile's catalog once")
    planned = int(descriptors[0]["tiles"])
    if len(ids) < planned and not params.allow_missing:
        raise BadInputError(
            f"got {len(ids)} of the plan's {planned} tiles", fix="pass every tile's catalog, or --allow-missing"
        )
    grid = grid_of_record(grid_properties, name=f"the deep-lulc:grid of {tiles[0].item.id}")
    probabilities = _probabilities_of(tiles)

    with staged_output(output) as staged:
        folder = staged.path / whole
        folder.mkdir(parents=True)
        writers = PredictionWriters(folder, grid, scheme, probabilities=probabilities is not None)
        try:
            for index, (tile, descriptor) in enumerate(zip(tiles, descriptors, strict=True)):
                row, col = int(descriptor["row"]), int(descriptor["col"])
                with tile.open() as dataset:
                    writers.write_classes(np.asarray(dataset.read(1)), row=row, col=col)
                if probabilities is not None:
                    with probabilities[index].open() as dataset:
                        writers.write_probabilities(np.asarray(dataset.read()), row=row, col=col)
            writers.finish()
        except BaseException:
            writers.abandon()
            raise
        derived = sorted(
            {link.get_absolute_href() or "" for t in tiles for link in t.item.links if link.rel == "derived_from"}
        )
        item = prediction_item(
            whole,
            folder=folder,
            grid=grid,
            scheme=scheme,
            period=(str(period[0]), str(period[1])),
            derived_from=[*derived, *(t.item.get_self_href() or t.item.id for t in tiles)],
            properties={
                "deep-lulc:model": model_id,
                "deep-lulc:window": window,
                "deep-lulc:prediction_id": whole,
                "deep-lulc:grid": grid_properties,
                "deep-lulc:merged_tiles": sorted(ids),
            },
            class_pixels=writers.pixel_counts(),
            probabilities=probabilities is not None,
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="prediction",
            description=f"LULC prediction {whole} ({len(ids)} tiles)",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    log.info("merged %d tiles into %d x %d px", len(ids), grid.height, grid.width)
    extra = {
        "classes": storage.join_href(output, whole, "classes.tif"),
        "tiles": len(ids),
        "class_fractions": item.properties["deep-lulc:class_fractions"],
    }
    return StageResult.of_item(STAGE, catalog_href, whole, extra)

"""`deep-lulc merge`: mosaic the tile predictions of a fan-out into the one map a single process would make.

Tiles own disjoint core regions of one grid, so merging is placement, not blending; every tile is
checked to come from the same features grid, model and classes before anything is written.
"""

from __future__ import annotations

import logging

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.products.class_map import class_fractions, prediction_item
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.merge.mosaic import read_mosaic, write_mosaic
from deep_lulc.stages.merge.params import MergeInputs, MergeParams

STAGE = "merge"
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: MergeInputs, output: str, params: MergeParams) -> StageResult:
    """Mosaic the tile predictions `inputs.tiles` into one prediction under `output`."""
    mosaic = read_mosaic(list(inputs.tiles), allow_missing=params.allow_missing)
    whole, count = mosaic.record.prediction_id, len(mosaic.tiles)

    with staged_output(output) as staged:
        folder = staged.path / whole
        folder.mkdir(parents=True)
        class_pixels = write_mosaic(mosaic, folder)
        item = prediction_item(
            whole,
            folder=folder,
            grid=mosaic.grid,
            scheme=mosaic.scheme,
            period=mosaic.period,
            derived_from=mosaic.derived_from(),
            record=mosaic.record,
            class_pixels=class_pixels,
            probabilities=mosaic.probabilities is not None,
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id=whole,
            description=f"LULC prediction {whole} ({count} tiles)",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    log.info("merged %d tiles into %d x %d px", count, mosaic.grid.height, mosaic.grid.width)
    extra = {
        "classes": storage.join_href(output, whole, "classes.tif"),
        "tiles": count,
        "class_fractions": class_fractions(item),
    }
    return StageResult.of_item(STAGE, catalog_href, whole, extra)

"""`deep-lulc sample`: count the map's strata, allocate, draw, write the points to label.

Both passes read the map window by window (see draw.py), so a merged country-wide map is sampled in the
memory of one block.
"""

from __future__ import annotations

import logging

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.lulc.estimation import allocate
from deep_lulc.shared.products.sample import GEOPACKAGE_FILE, Allocation, sample_item, write_sample
from deep_lulc.shared.products.strata import StrataMap, open_strata_map
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.sample.draw import draw
from deep_lulc.stages.sample.params import SampleInputs, SampleParams

STAGE = "sample"
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: SampleInputs, output: str, params: SampleParams) -> StageResult:
    """A stratified random sample of the map at `inputs.map`, written to `output`."""
    strata = open_strata_map(inputs.map, classes=params.classes)
    pixels = strata.count()
    if not pixels:
        raise BadInputError(f"the --map {strata.identifier} holds no classified pixel", fix="pass a map with data")
    counts = allocate(pixels, size=params.size, minimum=params.min_per_stratum)
    allocation = Allocation(params.size, params.min_per_stratum, params.seed, pixels, counts)
    drawn = draw(strata, pixels, counts, seed=params.seed)
    identifier = strata.product_id("sample")

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        write_sample(folder, strata, drawn, allocation)
        item = sample_item(
            identifier,
            folder=folder,
            strata=strata,
            allocation=allocation,
            derived_from=[strata.source_href(inputs.map)],
        )
        catalog = finish_single_item_output(
            staged,
            item,
            catalog_id=identifier,
            description=f"Stratified random sample of {strata.identifier} for reference labelling",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    _log_allocation(strata, pixels, counts, params.size)
    return StageResult.of_item(
        STAGE,
        catalog,
        identifier,
        {
            "points": len(drawn.codes),
            "strata": len(counts),
            "sample": storage.join_href(output, identifier, GEOPACKAGE_FILE),
            "allocation": {strata.by_code()[code].name: taken for code, taken in sorted(counts.items())},
        },
    )


def _log_allocation(strata: StrataMap, pixels: dict[int, int], counts: dict[int, int], size: int) -> None:
    drawn = sum(counts.values())
    if drawn > size:
        log.warning(
            "%d points drawn, more than --size %d: %d strata x --min-per-stratum need them", drawn, size, len(counts)
        )
    names = strata.by_code()
    for code, taken in sorted(counts.items()):
        log.info("%-40s %12d px  %5d points", names[code].name, pixels[code], taken)

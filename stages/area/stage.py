"""`deep-lulc area`: the map's strata counted, the labelled sample matched to them, the estimators applied.

For a change map the strata are its transitions; the same sample also gives the later period's class areas
(each transition reported by the class it ends in), with the general form of the estimators.
"""

from __future__ import annotations

import logging

import numpy as np

from deep_lulc.shared.geo.grids import epsg_of
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.lulc.estimation import SampleEstimates, estimate
from deep_lulc.shared.products.area import Category, area_document, area_item, write_area_files
from deep_lulc.shared.products.sample import read_sample
from deep_lulc.shared.products.strata import StrataMap, open_strata_map
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.area.params import AreaInputs, AreaParams
from deep_lulc.stages.area.units import Units, match

STAGE = "area"
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: AreaInputs, output: str, params: AreaParams) -> StageResult:
    """Error-adjusted areas of the map at `inputs.map` from the labelled sample at `inputs.sample`."""
    strata = open_strata_map(inputs.map, classes=params.classes)
    pixels = strata.count()
    sample = read_sample(inputs.sample, epsg=epsg_of(strata.grid))
    units = match(strata, sample, pixels)
    total_ha = sum(pixels.values()) * strata.pixel_area_m2 / 10_000
    classes, transitions = estimates_of(strata, pixels, units)
    document = area_document(
        strata,
        sample_href=storage.redact(sample.href),
        total_ha=total_ha,
        classes=classes,
        transitions=transitions,
        labelled=len(units.reference),
        unlabelled=units.unlabelled,
    )
    identifier = strata.product_id("area")

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        write_area_files(folder, document)
        item = area_item(
            identifier, folder=folder, strata=strata, document=document, derived_from=[strata.source_href(inputs.map)]
        )
        catalog = finish_single_item_output(
            staged,
            item,
            catalog_id=identifier,
            description=f"Error-adjusted areas of {strata.identifier} from a labelled sample",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    log.info("overall accuracy %.3f +- %.3f", document["overall_accuracy"], document["overall_ci95"])
    extra = {key: document[key] for key in ("overall_accuracy", "overall_ci95", "total_ha", "classes")}
    if "transitions" in document:
        extra["transitions"] = document["transitions"]
    return StageResult.of_item(STAGE, catalog, identifier, extra)


def estimates_of(
    strata: StrataMap, pixels: dict[int, int], units: Units
) -> tuple[tuple[list[Category], SampleEstimates], tuple[list[Category], SampleEstimates] | None]:
    """(classes, transitions): the class estimates, and for a change map the transition estimates."""
    sizes = np.zeros(len(strata.strata), dtype=np.int64)
    for stratum in strata.strata:
        sizes[stratum.index] = pixels.get(stratum.code, 0)
    labelled = strata.scheme.labelled
    class_categories = [Category(c.name, c.value) for c in labelled]
    if strata.kind == "classes":
        found = estimate(sizes, np.arange(len(sizes)), units.strata, units.reference, categories=len(labelled))
        return (class_categories, found), None
    n = len(labelled)
    transitions = estimate(sizes, np.arange(len(sizes)), units.strata, units.reference, categories=len(sizes))
    later = estimate(sizes, np.arange(len(sizes)) % n, units.strata, units.reference % n, categories=n)
    transition_categories = [Category(stratum.name, stratum.code) for stratum in strata.strata]
    return (class_categories, later), (transition_categories, transitions)

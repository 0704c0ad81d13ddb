"""`deep-lulc change`: compare class maps pixel by pixel into transition maps and area matrices.

Two maps (`--before`, `--after`) give one change item; a series of maps given as arguments, in time order,
gives one item per consecutive pair, all in one collection. Every map is read window by window, so memory is
set by `--block-size`, not by the map. A map on another grid is resampled onto the first map's grid by
nearest neighbour (class codes must not be averaged), and the result says so: areas of a resampled
comparison carry the resampling's edge effects.

`--method raw` reports every pixel whose two classes differ; two maps classified independently disagree
along every parcel border and wherever a class flickers, so that overstates change several times over.
`--method joint` (the default for two maps) decides with both periods' class probabilities and a minimum
mapping unit (see joint.py). `--method consistent` (the default for three or more) decides every pair of a
series together, so a class that flickers for one year is no change (see decisions.py). Maps written
without `--probabilities` count their classes as certain (near-certain for consistent), with a warning.
Each item also gets a confidence COG: the probability that the pixel changed.

The result line of a series adds up its pairs (a pixel that changed in two pairs counts twice; the
top transitions are those of the summed matrices) and lists each pair under `pairs`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import pixel_area_m2
from deep_lulc.shared.io.publish import StagedOutput, staged_output
from deep_lulc.shared.lulc.consistency import StickyChain
from deep_lulc.shared.lulc.transitions import TransitionCoding
from deep_lulc.shared.products.change import ChangeOutcome, change_item, write_matrix_files, write_thumbnail
from deep_lulc.shared.products.class_map import PROBABILITIES_ASSET
from deep_lulc.shared.stage.contract import StageResult, finish_items_output, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.change.areas import Areas, measure
from deep_lulc.stages.change.decisions import ConsistentDecider, Decider, JointDecider, RawDecider
from deep_lulc.stages.change.joint import Cleaning, JointRule, unit_pixels
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams, Method
from deep_lulc.stages.change.series import Series, open_series
from deep_lulc.stages.change.streaming import probabilities_of, write_pairs

STAGE = "change"
MAX_HALO = 4096
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: ChangeInputs, output: str, params: ChangeParams) -> StageResult:
    """Transitions between consecutive maps of `inputs` (--before and --after, or a series), written to `output`."""
    series = open_series(inputs, params.classes)
    method = params.method_for(len(series.maps))
    first = "the --before map" if series.paired else "the first map"
    area_m2 = pixel_area_m2(series.grid, what=first, fix="predict onto a projected grid (e.g. UTM)")
    coding = TransitionCoding(series.scheme)
    decider, records = decision_rule(params, method, series, coding, area_m2)

    with staged_output(output) as staged:
        folders = [staged.path / series.pair_id(pair) for pair in range(series.pairs)]
        for folder in folders:
            folder.mkdir(parents=True)
        tallies = write_pairs(folders, series, coding, params.block_size, decider)
        areas = [
            measure(written, raw, coding, area_m2) for written, raw in zip(tallies.written, tallies.raw, strict=True)
        ]
        outcomes = [
            ChangeOutcome(
                resampled=series.resampled[pair] or series.resampled[pair + 1],
                changed_fraction=areas[pair].summary["changed_fraction"],
                method={**records[pair], "raw_changed_ha": areas[pair].raw_changed_ha},
            )
            for pair in range(series.pairs)
        ]
        items = [
            _item(folders[pair], series, pair, coding, tallies.written[pair], areas[pair], outcomes[pair], method)
            for pair in range(series.pairs)
        ]
        catalog_href = _publish(staged, items, series, inputs=inputs, params=params)
    for pair in range(series.pairs):
        _log_areas(areas[pair], outcomes[pair], method, None if series.paired else series.pair_id(pair))
    if series.paired:
        return StageResult.of_item(STAGE, catalog_href, items[0].id, _extra(areas[0], outcomes[0].resampled, method))
    total = measure(np.sum(tallies.written, axis=0), np.sum(tallies.raw, axis=0), coding, area_m2)
    extra = {**_extra(total, any(series.resampled), method), "pairs": _pairs(series, areas)}
    return StageResult(stage=STAGE, catalog=catalog_href, items=tuple(item.id for item in items), extra=extra)


def _item(
    folder: Path,
    series: Series,
    pair: int,
    coding: TransitionCoding,
    counts: np.ndarray,
    areas: Areas,
    outcome: ChangeOutcome,
    method: Method,
) -> pystac.Item:
    """The matrices, the thumbnail and the item beside a pair's COGs in `folder`."""
    before, after = series.maps[pair], series.maps[pair + 1]
    write_matrix_files(folder, areas.summary)
    write_thumbnail(folder, coding, title=f"{before.item.id} -> {after.item.id}")
    # A consistent pair is decided by every period: its item derives from all of them, its own two first.
    others = [i for i in range(len(series.maps)) if i not in (pair, pair + 1)] if method == "consistent" else []
    return change_item(
        folder.name,
        folder=folder,
        footprint=before.item,
        grid=series.grid,
        period=series.periods[pair],
        coding=coding,
        counts=counts,
        outcome=outcome,
        derived_from=[series.source(i) for i in (pair, pair + 1, *others)],
    )


def _publish(
    staged: StagedOutput, items: list[pystac.Item], series: Series, *, inputs: ChangeInputs, params: ChangeParams
) -> str:
    """The catalog of the change items; the two-map form keeps its one-item layout."""
    ids, collection = [m.item.id for m in series.maps], series.collection_id
    if series.paired:
        description = f"Land-cover change {ids[0]} -> {ids[1]}"
        return finish_single_item_output(
            staged, items[0], catalog_id=collection, description=description, stage=STAGE, inputs=inputs, params=params
        )
    description = f"Land-cover change {ids[0]} -> {ids[-1]}, {len(ids)} periods pair by pair"
    return finish_items_output(
        staged, items, catalog_id=collection, description=description, stage=STAGE, inputs=inputs, params=params
    )


def _log_areas(areas: Areas, outcome: ChangeOutcome, method: str, identifier: str | None) -> None:
    summary = areas.summary
    log.info(
        "%s%.2f ha of %.2f ha changed (%.2f%%)%s, method %s (a pixel-by-pixel comparison: %.2f ha)",
        "" if identifier is None else f"{identifier}: ",
        summary["changed_ha"],
        summary["changed_ha"] + summary["stable_ha"],
        100 * summary["changed_fraction"],
        " after resampling" if outcome.resampled else "",
        method,
        areas.raw_changed_ha,
    )


def _extra(areas: Areas, resampled: bool, method: str) -> dict[str, Any]:
    """The headline numbers of the result line; the rest lives in the matrix assets."""
    return {
        "changed_fraction": areas.summary["changed_fraction"],
        "changed_ha": areas.summary["changed_ha"],
        "net_change_ha": areas.summary["net_change_ha"],
        "top_transitions": areas.top_transitions,
        "resampled": resampled,
        "method": method,
        "raw_changed_ha": areas.raw_changed_ha,
    }


def _pairs(series: Series, areas: list[Areas]) -> list[dict[str, Any]]:
    """Each pair's headline numbers, for the result line of a series."""
    return [
        {
            "before": series.maps[pair].item.id,
            "after": series.maps[pair + 1].item.id,
            "item": series.pair_id(pair),
            "changed_ha": areas[pair].summary["changed_ha"],
            "changed_fraction": areas[pair].summary["changed_fraction"],
            "raw_changed_ha": areas[pair].raw_changed_ha,
        }
        for pair in range(series.pairs)
    ]


def decision_rule(
    params: ChangeParams, method: Method, series: Series, coding: TransitionCoding, area_m2: float
) -> tuple[Decider, list[dict[str, Any]]]:
    """The decider of `method` and, per pair, the record of it the item carries."""
    if method == "raw":
        return RawDecider(), [{"method": "raw"}] * series.pairs
    present = [probabilities_of(m, coding) is not None for m in series.maps]
    _warn_without_probabilities(series, present, method)
    cleaning = Cleaning(
        opening_radius=params.opening_for(method), unit_pixels=unit_pixels(params.min_mapping_unit, area_m2)
    )
    if cleaning.halo > MAX_HALO:
        raise BadInputError(
            f"--min-mapping-unit {params.min_mapping_unit} ha is {cleaning.unit_pixels} px of this grid, more "
            f"than the {MAX_HALO} px a window may read around itself",
            fix="pass a smaller --min-mapping-unit, or compare maps on a coarser grid",
        )
    unit_ha = params.min_mapping_unit
    if method == "consistent":
        consistent = ConsistentDecider(StickyChain(coding.n, params.change_rate), cleaning)
        ids = [m.item.id for m in series.maps]
        record = consistent.record(unit_ha=unit_ha, periods=ids, probabilities=dict(zip(ids, present, strict=True)))
        return consistent, [record] * series.pairs
    rule = JointRule(
        same_below=params.same_class_below,
        min_confidence=params.min_confidence,
        opening_radius=cleaning.opening_radius,
        unit_pixels=cleaning.unit_pixels,
    )
    records = [
        rule.record(unit_ha=unit_ha, probabilities={"before": present[pair], "after": present[pair + 1]})
        for pair in range(series.pairs)
    ]
    return JointDecider(rule), records


def _warn_without_probabilities(series: Series, present: list[bool], method: Method) -> None:
    missing = [label for label, found in zip(series.labels, present, strict=True) if not found]
    if not missing:
        return
    log.warning(
        "%s %s no '%s' asset: comparing %s classes as certain (run `deep-lulc predict --probabilities` "
        "for a %s decision that weighs how sure each period is)",
        " and ".join(missing) if series.paired else ", ".join(missing),
        "has" if len(missing) == 1 else "have",
        PROBABILITIES_ASSET,
        "its" if len(missing) == 1 else "their",
        method,
    )

"""`deep-lulc change`: compare two class maps pixel by pixel into a transition map and an area matrix.

Both maps are read window by window, so memory is set by `--block-size`, not by the map. A map on another
grid is resampled onto the `--before` grid by nearest neighbour (class codes must not be averaged), and
the result says so: areas of a resampled comparison carry the resampling's edge effects.

`--method raw` reports every pixel whose two classes differ; two maps classified independently disagree
along every parcel border and wherever a class flickers, so that overstates change several times over.
`--method joint` (the default) decides with both periods' class probabilities and a minimum mapping unit
(see joint.py); maps written without `--probabilities` count their classes as certain, with a warning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, pixel_area_m2, same_grid
from deep_lulc.shared.io.publish import StagedOutput, staged_output
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.transitions import TransitionCoding, scheme_difference
from deep_lulc.shared.products.change import ChangeOutcome, change_item, write_matrix_files, write_thumbnail
from deep_lulc.shared.products.class_map import PROBABILITIES_ASSET, ClassMap, open_class_map, source_href
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.change.areas import Areas, measure
from deep_lulc.stages.change.joint import JointRule, unit_pixels
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams
from deep_lulc.stages.change.streaming import probabilities_of, write_transitions

STAGE = "change"
MAX_HALO = 4096
ID_LIMIT = 120
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: ChangeInputs, output: str, params: ChangeParams) -> StageResult:
    """Transitions from the map at `inputs.before` to the map at `inputs.after`, written to `output`."""
    before = open_class_map(inputs.before, made_by="predict")
    after = open_class_map(inputs.after, made_by="predict")
    scheme = common_scheme(before.scheme, after.scheme, params.classes)
    period = _period(before.item, after.item)
    area_m2 = pixel_area_m2(before.grid, what="the --before map", fix="predict onto a projected grid (e.g. UTM)")
    resampled = must_resample(before.grid, after.grid)
    coding = TransitionCoding(scheme)
    identifier = change_id(before.item.id, after.item.id)
    rule, method = decision_rule(params, before, after, coding, area_m2)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        counts, raw_counts = write_transitions(folder, before, after, coding, params.block_size, resampled, rule)
        areas = measure(counts, raw_counts, coding, area_m2)
        outcome = ChangeOutcome(
            resampled=resampled,
            changed_fraction=areas.summary["changed_fraction"],
            method={**method, "raw_changed_ha": areas.raw_changed_ha},
        )
        catalog_href = _publish(
            staged, folder, (before, after), coding, counts, areas, outcome, period=period, inputs=inputs, params=params
        )
    _log_areas(areas, outcome, params.method)
    return StageResult.of_item(STAGE, catalog_href, identifier, _extra(areas, outcome, params.method))


def _publish(
    staged: StagedOutput,
    folder: Path,
    maps: tuple[ClassMap, ClassMap],
    coding: TransitionCoding,
    counts: np.ndarray,
    areas: Areas,
    outcome: ChangeOutcome,
    *,
    period: tuple[str, str],
    inputs: ChangeInputs,
    params: ChangeParams,
) -> str:
    """The matrices, the thumbnail and the item beside the transition COG in `folder`; the catalog's href."""
    before, after = maps
    write_matrix_files(folder, areas.summary)
    write_thumbnail(folder, coding, title=f"{before.item.id} -> {after.item.id}")
    item = change_item(
        folder.name,
        folder=folder,
        footprint=before.item,
        grid=before.grid,
        period=period,
        coding=coding,
        counts=counts,
        outcome=outcome,
        derived_from=[source_href(before, inputs.before), source_href(after, inputs.after)],
    )
    return finish_single_item_output(
        staged,
        item,
        catalog_id="change",
        description=f"Land-cover change {before.item.id} -> {after.item.id}",
        stage=STAGE,
        inputs=inputs,
        params=params,
    )


def _log_areas(areas: Areas, outcome: ChangeOutcome, method: str) -> None:
    summary = areas.summary
    log.info(
        "%.2f ha of %.2f ha changed (%.2f%%)%s, method %s (a pixel-by-pixel comparison: %.2f ha)",
        summary["changed_ha"],
        summary["changed_ha"] + summary["stable_ha"],
        100 * summary["changed_fraction"],
        " after resampling" if outcome.resampled else "",
        method,
        areas.raw_changed_ha,
    )


def _extra(areas: Areas, outcome: ChangeOutcome, method: str) -> dict[str, Any]:
    """The headline numbers of the result line; the rest lives in the matrix assets."""
    return {
        "changed_fraction": areas.summary["changed_fraction"],
        "changed_ha": areas.summary["changed_ha"],
        "net_change_ha": areas.summary["net_change_ha"],
        "top_transitions": areas.top_transitions,
        "resampled": outcome.resampled,
        "method": method,
        "raw_changed_ha": areas.raw_changed_ha,
    }


def decision_rule(
    params: ChangeParams, before: ClassMap, after: ClassMap, coding: TransitionCoding, area_m2: float
) -> tuple[JointRule | None, dict[str, Any]]:
    """The joint rule (None for --method raw) and the record of it the item carries."""
    if params.method == "raw":
        return None, {"method": "raw"}
    present = {key: probabilities_of(m, coding) is not None for key, m in (("before", before), ("after", after))}
    missing = [f"--{key}" for key, found in present.items() if not found]
    if missing:
        log.warning(
            "%s %s no '%s' asset: comparing %s classes as certain (run `deep-lulc predict --probabilities` "
            "for a joint decision that weighs how sure each period is)",
            " and ".join(missing),
            "has" if len(missing) == 1 else "have",
            PROBABILITIES_ASSET,
            "its" if len(missing) == 1 else "their",
        )
    rule = JointRule(
        same_below=params.same_class_below,
        min_confidence=params.min_confidence,
        opening_radius=params.opening_radius,
        unit_pixels=unit_pixels(params.min_mapping_unit, area_m2),
    )
    if rule.halo > MAX_HALO:
        raise BadInputError(
            f"--min-mapping-unit {params.min_mapping_unit} ha is {rule.unit_pixels} px of this grid, more than "
            f"the {MAX_HALO} px a window may read around itself",
            fix="pass a smaller --min-mapping-unit, or compare maps on a coarser grid",
        )
    return rule, rule.record(unit_ha=params.min_mapping_unit, probabilities=present)


def common_scheme(before: ClassScheme, after: ClassScheme, classes_file: str | None) -> ClassScheme:
    """The one scheme both maps use; a file given with --classes must agree with them and lends its colours."""
    difference = scheme_difference(before, after)
    if difference:
        raise BadInputError(
            f"the --before and --after maps use different class schemes ({difference})",
            fix="compare maps predicted with the same class scheme",
        )
    if classes_file is None:
        return before
    declared = load_class_scheme(classes_file)
    difference = scheme_difference(declared, before)
    if difference:
        raise BadInputError(
            f"--classes {classes_file} does not match the maps' class scheme ({difference})",
            fix="pass the scheme the maps were predicted with, or leave out --classes",
        )
    return declared


def change_id(before: str, after: str) -> str:
    """`change-<before>-to-<after>`; overlong ids are shortened and keep a digest of the full one."""
    identifier = f"change-{before}-to-{after}"
    if len(identifier) <= ID_LIMIT:
        return identifier
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
    keep = (ID_LIMIT - len("change--to--") - len(digest)) // 2
    return f"change-{before[:keep]}-to-{after[:keep]}-{digest}"


def _period(before: pystac.Item, after: pystac.Item) -> tuple[str, str]:
    """From the --before map's start to the --after map's end, as ISO strings."""
    start = before.common_metadata.start_datetime or before.datetime
    end = after.common_metadata.end_datetime or after.datetime
    if start is None or end is None:
        raise BadInputError(
            "the maps lack start_datetime/end_datetime", fix="pass items written by `deep-lulc predict`"
        )
    if start > end:
        raise BadInputError(
            f"the --before map starts ({_iso(start)}) after the --after map ends ({_iso(end)})",
            fix="swap --before and --after",
        )
    after_start = after.common_metadata.start_datetime or after.datetime
    if after_start is not None and after_start < start:
        log.warning("the --after map's period starts before the --before map's: are the two swapped?")
    return _iso(start), _iso(end)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def must_resample(grid: GeoBox, other: GeoBox) -> bool:
    """Whether the --after map (on `other`) must be resampled onto the --before grid; it must at least overlap."""
    if same_grid(grid, other):
        return False
    log.warning(
        "the --after map's grid (EPSG:%d, %dx%d px) differs from the --before map's (EPSG:%d, %dx%d px): "
        "resampling --after onto the --before grid by nearest neighbour",
        epsg_of(other),
        other.width,
        other.height,
        epsg_of(grid),
        grid.width,
        grid.height,
    )
    _require_overlap(grid, other)
    return True


def _require_overlap(grid: GeoBox, other: GeoBox) -> None:
    west, south, east, north = other.boundingbox
    left, bottom, right, top = transform_bounds(
        CRS.from_epsg(epsg_of(other)), CRS.from_epsg(epsg_of(grid)), west, south, east, north
    )
    x0, y0, x1, y1 = grid.boundingbox
    if left >= x1 or right <= x0 or bottom >= y1 or top <= y0:
        raise BadInputError("the --before and --after maps do not overlap", fix="pass two maps of the same area")

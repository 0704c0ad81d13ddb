"""The labelled sample matched to the map: each point's stratum read from the map, its reference checked.

This is where a sample that does not belong to the map is caught (a point off the map or on its nodata, a
`map_class` or stratum size that differs from the map's): estimates from such a sample would be numbers with
exit 0 and no meaning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.products.sample import LabelledSample
from deep_lulc.shared.products.strata import StrataMap

log = logging.getLogger(__name__)
OTHER_MAP_FIX = "estimate with the map the sample was drawn from (or draw a new sample with `deep-lulc sample`)"
SHOWN = 5  # points named in a message


@dataclass(frozen=True)
class Units:
    """The labelled sample units: stratum and reference as category indices (class or transition)."""

    strata: np.ndarray
    reference: np.ndarray
    unlabelled: int


def _ids(sample: LabelledSample, where: np.ndarray) -> str:
    chosen = [str(value) for value in sample.ids[where][:SHOWN]]
    more = int(where.sum()) - len(chosen) if where.dtype == bool else 0
    return ", ".join(chosen) + (f" (+{more} more)" if more > 0 else "")


def pixels_of(strata: StrataMap, sample: LabelledSample) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each point on the map's grid; a point off the map is bad input."""
    rows, cols = strata.pixels_at(sample.xs, sample.ys)
    outside = (rows < 0) | (cols < 0) | (rows >= strata.grid.height) | (cols >= strata.grid.width)
    if outside.any():
        raise BadInputError(
            f"{int(outside.sum())} sample point(s) lie outside the --map {strata.identifier} (sample_id "
            f"{_ids(sample, outside)})",
            fix=OTHER_MAP_FIX,
        )
    return rows, cols


def require_same_map(strata: StrataMap, sample: LabelledSample, codes: np.ndarray, pixels: dict[int, int]) -> None:
    """The map under each point must be what the sample recorded when it was drawn, stratum sizes included."""
    nodata = 0 if strata.kind == "transitions" else strata.scheme.nodata
    on_nodata = codes == nodata
    if on_nodata.any():
        raise BadInputError(
            f"sample point(s) {_ids(sample, on_nodata)} lie on the --map's nodata: the sample was drawn from "
            "another map",
            fix=OTHER_MAP_FIX,
        )
    if sample.map_class is not None:
        recorded = sample.map_class
        differ = ~np.isnan(recorded) & (recorded != codes)
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            raise BadInputError(
                f"the sample was drawn from another map: {int(differ.sum())} point(s) record a map_class the --map "
                f"does not hold there (sample_id {sample.ids[first]}: {int(recorded[first])} in the sample, "
                f"{int(codes[first])} in the map)",
                fix=OTHER_MAP_FIX,
            )
    if sample.stratum_pixels is not None:
        counted = np.array([pixels.get(int(code), 0) for code in codes], dtype=np.float64)
        differ = ~np.isnan(sample.stratum_pixels) & (sample.stratum_pixels != counted)
        if differ.any():
            first = int(np.flatnonzero(differ)[0])
            name = strata.by_code()[int(codes[first])].name
            raise BadInputError(
                f"the sample was drawn from another map: it says stratum {name} has "
                f"{int(sample.stratum_pixels[first])} px, the --map has {int(counted[first])}",
                fix=OTHER_MAP_FIX,
            )


def reference_indices(strata: StrataMap, sample: LabelledSample) -> np.ndarray:
    """Each point's reference as a category index; -1 where the analyst left it empty."""
    scheme = strata.scheme
    labelled = {c.value: index for index, c in enumerate(scheme.labelled)}
    listing = ", ".join(f"{c.value} {c.name}" for c in scheme.labelled)

    def classes_of(values: np.ndarray, column: str) -> np.ndarray:
        out = np.full(len(values), -1, dtype=np.int64)
        for position, value in enumerate(values):
            if np.isnan(value):
                continue
            if int(value) not in labelled:
                raise BadInputError(
                    f"reference class {int(value)} of sample_id {sample.ids[position]} ('{column}') is not in the "
                    f"map's class scheme",
                    fix=f"label with one of {listing}",
                )
            out[position] = labelled[int(value)]
        return out

    if strata.kind == "classes":
        return classes_of(sample.reference, "reference")
    n = len(scheme.labelled)
    found = np.full(len(sample.reference), -1, dtype=np.int64)
    for position, value in enumerate(sample.reference):
        if np.isnan(value):
            continue
        if not 1 <= int(value) <= n * n:
            raise BadInputError(
                f"reference {int(value)} of sample_id {sample.ids[position]} is not a transition code of the map "
                f"(1..{n * n}, 1 + from_index * {n} + to_index)",
                fix="write the transition code, or the two classes in reference_from and reference_to",
            )
        found[position] = int(value) - 1
    if sample.reference_from is not None and sample.reference_to is not None:
        before = classes_of(sample.reference_from, "reference_from")
        after = classes_of(sample.reference_to, "reference_to")
        half = (before >= 0) != (after >= 0)
        if (half & (found < 0)).any():
            raise BadInputError(
                f"sample_id {_ids(sample, half & (found < 0))} has only one of reference_from and reference_to",
                fix="label both periods, or neither",
            )
        pair = (before >= 0) & (after >= 0) & (found < 0)
        found[pair] = before[pair] * n + after[pair]
    return found


def require_labelled_strata(strata: StrataMap, units: np.ndarray, pixels: dict[int, int]) -> None:
    """Every stratum of the map needs two labelled points (its variance), or all of its pixels."""
    by_index = {stratum.index: stratum for stratum in strata.strata}
    codes = {stratum.index: stratum.code for stratum in strata.strata}
    counts = np.bincount(units, minlength=len(strata.strata))
    short = [
        f"{by_index[index].name} ({counts[index]} labelled)"
        for index in sorted(by_index)
        if pixels.get(codes[index], 0) > 0 and counts[index] < min(2, pixels[codes[index]])
    ]
    if short:
        raise BadInputError(
            f"stratum {', '.join(short[:SHOWN])}{' and more' if len(short) > SHOWN else ''} has fewer than two "
            "labelled points",
            fix="label at least two points of every stratum (draw the sample with `deep-lulc sample`, which gives "
            "each stratum --min-per-stratum points)",
        )


def match(strata: StrataMap, sample: LabelledSample, pixels: dict[int, int]) -> Units:
    """The sample's labelled units, each in the stratum the map gives its pixel."""
    rows, cols = pixels_of(strata, sample)
    codes = strata.values_at(rows, cols)
    require_same_map(strata, sample, codes, pixels)
    reference = reference_indices(strata, sample)
    labelled = reference >= 0
    stratum_index = np.array([strata.by_code()[int(code)].index for code in codes], dtype=np.int64)
    require_labelled_strata(strata, stratum_index[labelled], pixels)
    unlabelled = int((~labelled).sum())
    if unlabelled:
        log.warning("%d of %d sample points have no reference label: left out", unlabelled, len(reference))
    return Units(strata=stratum_index[labelled], reference=reference[labelled], unlabelled=unlabelled)

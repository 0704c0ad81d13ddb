"""The maps `change` compares, opened and checked together: --before and --after, or a series in time order.

Every map must use one class scheme, and every map is read on the first map's grid (resampled by nearest
neighbour where its grid differs, since class codes must not be averaged). A series must be in time order,
each map once: consecutive pairs are what the output describes, and a pair's id is made of its maps' ids.
The two-map form keeps its own wording (`--before`, `--after`) in every message.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pystac
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, same_grid
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.stac import iso_utc
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.transitions import scheme_difference
from deep_lulc.shared.products.change import change_collection_id, change_id
from deep_lulc.shared.products.class_map import ClassMap, open_class_map, source_href
from deep_lulc.stages.change.params import ChangeInputs

ORDER_FIX = "pass each period's map once, earliest first"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    """The maps to compare, earliest first, and how each is read onto the first map's grid."""

    maps: tuple[ClassMap, ...]
    hrefs: tuple[str, ...]
    labels: tuple[str, ...]  # how messages name each map: `--before`, or `map 2 (<item id>)`
    scheme: ClassScheme
    resampled: tuple[bool, ...]  # whether each map is resampled onto the first map's grid
    periods: tuple[tuple[str, str], ...]  # each consecutive pair's: the earlier map's start, the later's end
    paired: bool  # given as --before and --after

    @property
    def grid(self) -> GeoBox:
        return self.maps[0].grid

    @property
    def pairs(self) -> int:
        return len(self.maps) - 1

    def pair_id(self, pair: int) -> str:
        return change_id(self.maps[pair].item.id, self.maps[pair + 1].item.id)

    @property
    def collection_id(self) -> str:
        return change_collection_id([m.item.id for m in self.maps])

    def what(self, index: int) -> str:
        """The map as the subject of a message about its pixels."""
        return f"the {self.labels[index]} map" if self.paired else self.labels[index]

    def source(self, index: int) -> str:
        """The map's href as a product derived from it records it."""
        return source_href(self.maps[index], self.hrefs[index])


def open_series(inputs: ChangeInputs, classes_file: str | None) -> Series:
    """Open and check every map of `inputs`."""
    hrefs = inputs.series()
    maps = tuple(open_class_map(href, made_by="predict") for href in hrefs)
    if inputs.paired:
        labels: tuple[str, ...] = ("--before", "--after")
    else:
        labels = tuple(f"map {index + 1} ({m.item.id})" for index, m in enumerate(maps))
    scheme = common_scheme(maps, labels, classes_file, paired=inputs.paired)
    periods = (_period(maps[0].item, maps[1].item),) if inputs.paired else _series_periods(maps, hrefs, labels)
    resampled = (
        False,
        *(
            must_resample(maps[0], m, label, paired=inputs.paired)
            for m, label in zip(maps[1:], labels[1:], strict=True)
        ),
    )
    return Series(maps, hrefs, labels, scheme, resampled, periods, inputs.paired)


def common_scheme(
    maps: tuple[ClassMap, ...], labels: tuple[str, ...], classes_file: str | None, *, paired: bool
) -> ClassScheme:
    """The one scheme every map uses; a file given with --classes must agree with them and lends its colours."""
    first = maps[0].scheme
    for class_map, label in zip(maps[1:], labels[1:], strict=True):
        difference = scheme_difference(first, class_map.scheme)
        if difference:
            which = "the --before and --after maps use" if paired else f"{labels[0]} and {label} use"
            raise BadInputError(
                f"{which} different class schemes ({difference})",
                fix="compare maps predicted with the same class scheme",
            )
    if classes_file is None:
        return first
    declared = load_class_scheme(classes_file)
    difference = scheme_difference(declared, first)
    if difference:
        raise BadInputError(
            f"--classes {classes_file} does not match the maps' class scheme ({difference})",
            fix="pass the scheme the maps were predicted with, or leave out --classes",
        )
    return declared


def _bounds(item: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    if start is None or end is None:
        raise BadInputError(
            "the maps lack start_datetime/end_datetime", fix="pass items written by `deep-lulc predict`"
        )
    return start, end


def _period(before: pystac.Item, after: pystac.Item) -> tuple[str, str]:
    """From the --before map's start to the --after map's end, as ISO strings."""
    start, _ = _bounds(before)
    after_start, end = _bounds(after)
    if start > end:
        raise BadInputError(
            f"the --before map starts ({iso_utc(start)}) after the --after map ends ({iso_utc(end)})",
            fix="swap --before and --after",
        )
    if after_start < start:
        log.warning("the --after map's period starts before the --before map's: are the two swapped?")
    return iso_utc(start), iso_utc(end)


def _series_periods(
    maps: tuple[ClassMap, ...], hrefs: tuple[str, ...], labels: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    """Each consecutive pair's period; a map given twice, or out of time order, is bad input."""
    bounds = [_bounds(m.item) for m in maps]
    seen: dict[str, str] = {}
    for class_map, href, label in zip(maps, hrefs, labels, strict=True):
        for key in (class_map.item.id, storage.normalize_href(href)):
            if key in seen:
                raise BadInputError(f"{label} repeats {seen[key]}", fix=ORDER_FIX)
            seen[key] = label
    for index in range(1, len(maps)):
        (start, _), (previous, _) = bounds[index], bounds[index - 1]
        if start <= previous:
            raise BadInputError(
                f"the maps are not in time order: {labels[index]} starts {iso_utc(start)}, not after "
                f"{labels[index - 1]} ({iso_utc(previous)})",
                fix=ORDER_FIX,
            )
    return tuple((iso_utc(bounds[i][0]), iso_utc(bounds[i + 1][1])) for i in range(len(maps) - 1))


def must_resample(first: ClassMap, other: ClassMap, label: str, *, paired: bool) -> bool:
    """Whether map `other` must be resampled onto the first map's grid; it must at least overlap it."""
    grid, its = first.grid, other.grid
    if same_grid(grid, its):
        return False
    if paired:
        subject, reference, action = "the --after map's grid", "the --before map's", "resampling --after onto the"
        target = "--before grid"
    else:
        subject, reference, action = f"the grid of {label}", "the first map's", "resampling it onto the"
        target = "first map's grid"
    log.warning(
        "%s (EPSG:%d, %dx%d px) differs from %s (EPSG:%d, %dx%d px): %s %s by nearest neighbour",
        subject,
        epsg_of(its),
        its.width,
        its.height,
        reference,
        epsg_of(grid),
        grid.width,
        grid.height,
        action,
        target,
    )
    if not _overlap(grid, its):
        problem = (
            "the --before and --after maps do not overlap" if paired else f"{label} does not overlap the first map"
        )
        fix = "pass two maps of the same area" if paired else "pass maps of the same area"
        raise BadInputError(problem, fix=fix)
    return True


def _overlap(grid: GeoBox, other: GeoBox) -> bool:
    west, south, east, north = other.boundingbox
    left, bottom, right, top = transform_bounds(
        CRS.from_epsg(epsg_of(other)), CRS.from_epsg(epsg_of(grid)), west, south, east, north
    )
    x0, y0, x1, y1 = grid.boundingbox
    return not (left >= x1 or right <= x0 or bottom >= y1 or top <= y0)

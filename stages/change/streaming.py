"""Both maps streamed window by window into the transition COG.

Memory is set by the window (`--block-size`), not by the map: each window of the --before grid is read from
both maps (the --after map resampled onto it by nearest neighbour when its grid differs, since class codes
must not be averaged), decided, and written before the next is read.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.geo.windows import PixelWindow, blocks
from deep_lulc.shared.lulc.transitions import NODATA_CODE, TransitionCoding, class_indices
from deep_lulc.shared.products.change import change_writer
from deep_lulc.shared.products.class_map import (
    PROBABILITIES_ASSET,
    PROBABILITY_NODATA,
    ClassMap,
    CogAsset,
    require_shape,
)
from deep_lulc.stages.change.joint import JointRule, as_probabilities, clean, decide, one_hot, stable_class

SHAPE_FIX = "pass an item written by `deep-lulc predict`"


def probabilities_of(class_map: ClassMap, coding: TransitionCoding) -> CogAsset | None:
    """The map's class-probability COG, if its item has one; one that lists other classes is refused."""
    asset = class_map.probabilities()
    if asset is None:
        return None
    names = asset.band_names()
    expected = [c.name for c in coding.classes]
    if asset.bands and names != expected:
        raise BadInputError(
            f"the '{PROBABILITIES_ASSET}' asset of {class_map.item.id} has bands {names}, not the classes {expected}",
            fix="pass maps written by `deep-lulc predict --probabilities`, or --method raw",
        )
    return asset


class Period:
    """One map opened for reading on the --before grid: its classes and, if it has them, probabilities."""

    def __init__(
        self,
        class_map: ClassMap,
        coding: TransitionCoding,
        grid: GeoBox,
        *,
        option: str,
        resampled: bool,
        probabilities: CogAsset | None,
    ) -> None:
        self.coding, self.grid, self.option, self.resampled = coding, grid, option, resampled
        self.stack = contextlib.ExitStack()
        self.classes = self.stack.enter_context(class_map.open())
        require_shape(self.classes, class_map.grid, what=option, fix=SHAPE_FIX)
        self.probabilities = None
        if probabilities is not None:
            self.probabilities = self.stack.enter_context(probabilities.open())
            require_shape(self.probabilities, class_map.grid, what=f"{option} probabilities", fix=SHAPE_FIX)
            if self.probabilities.count != coding.n:
                raise BadInputError(
                    f"the {option} probabilities have {self.probabilities.count} bands for {coding.n} classes",
                    fix="pass maps written by `deep-lulc predict --probabilities`, or --method raw",
                )

    def close(self) -> None:
        self.stack.close()

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class values of `window` of the --before grid."""
        if not self.resampled:
            return np.asarray(self.classes.read(1, window=window.rasterio()))
        return _resample(self.classes, self._target(window), nodata=self.coding.scheme.nodata)

    def likelihoods(self, window: PixelWindow, indices: np.ndarray) -> np.ndarray:
        """(n, rows, cols) class probabilities; the mapped class as certain for a map without them."""
        if self.probabilities is None:
            return one_hot(indices, self.coding.n)
        if self.resampled:
            percent = _resample(
                self.probabilities,
                self._target(window),
                nodata=PROBABILITY_NODATA,
                bands=list(range(1, self.coding.n + 1)),
            )
        else:
            percent = np.asarray(self.probabilities.read(window=window.rasterio()))
        return as_probabilities(percent, indices, nodata=PROBABILITY_NODATA)

    def _target(self, window: PixelWindow) -> GeoBox:
        return self.grid[window.slices]


def write_transitions(
    folder: Path,
    before: ClassMap,
    after: ClassMap,
    coding: TransitionCoding,
    size: int,
    resampled: bool,
    rule: JointRule | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream both maps into the transition COG; returns the pixel count of every code, as written and as a
    pixel-by-pixel comparison would have written it."""
    grid = before.grid
    counts = np.zeros(coding.codes, dtype=np.int64)
    raw_counts = np.zeros(coding.codes, dtype=np.int64)
    writer = change_writer(folder, grid, coding)
    periods: list[Period] = []
    try:
        for class_map, option, other_grid in ((before, "--before", False), (after, "--after", resampled)):
            found = None if rule is None else probabilities_of(class_map, coding)
            periods.append(Period(class_map, coding, grid, option=option, resampled=other_grid, probabilities=found))
        first, second = periods
        for window in blocks(grid.height, grid.width, size):
            old, new = first.read(window), second.read(window)
            raw = coding.encode(old, new)
            raw_counts += np.bincount(raw.ravel(), minlength=coding.codes)
            codes = raw if rule is None else _joint_codes(window, old, new, first, second, coding, size, rule)
            counts += np.bincount(codes.ravel(), minlength=coding.codes)
            writer.write(codes, row=window.row, col=window.col)
    except BaseException:
        writer.abandon()
        raise
    finally:
        for period in reversed(periods):  # GDAL environments nest: the last opened closes first
            period.close()
    writer.finish()
    return counts, raw_counts


def _joint_codes(
    window: PixelWindow,
    old: np.ndarray,
    new: np.ndarray,
    first: Period,
    second: Period,
    coding: TransitionCoding,
    size: int,
    rule: JointRule,
) -> np.ndarray:
    """Transition codes of one window by the joint rule, cleaned with the halo the rule needs.

    The halo is decided tile by tile on the same block grid as the windows, so memory stays one block of
    probabilities plus one boolean mask, however large the mapping unit makes the halo.
    """
    before = class_indices(old, coding.scheme, what="the --before map")
    after = class_indices(new, coding.scheme, what="the --after map")
    p_before, p_after = first.likelihoods(window, before), second.likelihoods(window, after)
    changed, origin, target = decide(before, after, p_before, p_after, rule)
    if changed.any() and (rule.opening_radius > 0 or rule.unit_pixels > 1):
        row, col, height, width = window.row, window.col, window.height, window.width
        grid = first.grid
        top, left = max(0, row - rule.halo), max(0, col - rule.halo)
        bottom, right = min(grid.height, row + height + rule.halo), min(grid.width, col + width + rule.halo)
        mask = np.zeros((bottom - top, right - left), dtype=bool)
        for tile in _tiles(top, bottom, left, right, size):
            t_row, t_col = tile.row, tile.col
            rows = slice(t_row - top, t_row - top + tile.height)
            cols = slice(t_col - left, t_col - left + tile.width)
            if (t_row, t_col) == (row, col):
                mask[rows, cols] = changed
                continue
            tile_before = class_indices(first.read(tile), coding.scheme, what="the --before map")
            tile_after = class_indices(second.read(tile), coding.scheme, what="the --after map")
            mask[rows, cols] = decide(
                tile_before,
                tile_after,
                first.likelihoods(tile, tile_before),
                second.likelihoods(tile, tile_after),
                rule,
            )[0]
        kept = clean(mask, rule, margin=(row - top, bottom - row - height, col - left, right - col - width))
        dropped = changed & ~kept
        if dropped.any():
            shared = stable_class(p_before, p_after, before)
            origin[dropped] = shared[dropped]
            target[dropped] = shared[dropped]
    valid = origin >= 0
    return np.where(valid, 1 + origin * coding.n + target, NODATA_CODE).astype(coding.dtype)


def _tiles(top: int, bottom: int, left: int, right: int, size: int) -> list[PixelWindow]:
    """The windows of the `size` block grid that meet rows top..bottom-1 and cols left..right-1, clipped."""
    tiles = []
    for row in range(top - top % size, bottom, size):
        for col in range(left - left % size, right, size):
            r0, c0 = max(row, top), max(col, left)
            tiles.append(PixelWindow.at(r0, c0, min(row + size, bottom) - r0, min(col + size, right) - c0))
    return tiles


def _resample(dataset: Any, target: GeoBox, *, nodata: int, bands: list[int] | None = None) -> np.ndarray:
    """The part of `dataset` under `target`, nearest neighbour; GDAL reads only the source window it needs.
    One band as (rows, cols), or `bands` as (bands, rows, cols)."""
    shape = (target.height, target.width) if bands is None else (len(bands), target.height, target.width)
    destination = np.full(shape, nodata, dtype=dataset.dtypes[0])
    reproject(
        source=rasterio.band(dataset, 1 if bands is None else bands),
        destination=destination,
        src_transform=dataset.transform,
        src_crs=dataset.crs,
        src_nodata=nodata if dataset.nodata is None else dataset.nodata,
        dst_transform=target.affine,
        dst_crs=CRS.from_epsg(epsg_of(target)),
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    return destination

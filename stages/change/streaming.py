"""Every map streamed window by window into each consecutive pair's transition and confidence COGs.

Memory is set by the window (`--block-size`), not by the map: each window of the first map's grid is read
from every map (a map on another grid resampled onto it by nearest neighbour, since class codes must not be
averaged), decided for every pair at once, and written before the next is read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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
from deep_lulc.shared.products.change import change_writer, confidence_percent, confidence_writer
from deep_lulc.shared.products.class_map import (
    PROBABILITIES_ASSET,
    PROBABILITY_NODATA,
    ClassMap,
    CogAsset,
    require_shape,
)
from deep_lulc.stages.change.decisions import Block, Decided, Decider
from deep_lulc.stages.change.joint import as_probabilities, clean, one_hot
from deep_lulc.stages.change.series import Series

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
    """One map opened for reading on the first map's grid: its classes and, if it has them, probabilities."""

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
        """Class values of `window` of the first map's grid."""
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


def write_pairs(folders: list[Path], series: Series, coding: TransitionCoding, size: int, decider: Decider) -> Tallies:
    """Stream every map into each consecutive pair's transition and confidence COGs (pair `p` into
    `folders[p]`); returns each pair's pixel count of every code, as written and as a pixel-by-pixel
    comparison would have written it."""
    grid = series.grid
    tallies = Tallies.zeros(series.pairs, coding)
    writers = [(change_writer(folder, grid, coding), confidence_writer(folder, grid)) for folder in folders]
    periods: list[Period] = []
    try:
        for index, class_map in enumerate(series.maps):
            found = probabilities_of(class_map, coding) if decider.weighs_probabilities else None
            option, resampled = series.labels[index], series.resampled[index]
            periods.append(Period(class_map, coding, grid, option=option, resampled=resampled, probabilities=found))
        reader = Reader(periods, series, coding, decider.weighs_probabilities)
        for window in blocks(grid.height, grid.width, size):
            block = reader.read(window)
            valid = block.valid
            n = coding.n
            raw = np.where(valid, 1 + block.indices[:-1] * n + block.indices[1:], NODATA_CODE).astype(coding.dtype)
            decided = decider(block)
            _clean_window(window, decided, decider, reader, size)
            codes = np.where(decided.origin >= 0, 1 + decided.origin * n + decided.target, NODATA_CODE)
            for pair, (change, confidence) in enumerate(writers):
                tallies.raw[pair] += np.bincount(raw[pair].ravel(), minlength=coding.codes)
                tallies.written[pair] += np.bincount(codes[pair].ravel(), minlength=coding.codes)
                change.write(codes[pair].astype(coding.dtype), row=window.row, col=window.col)
                percent = confidence_percent(decided.confidence[pair], valid[pair])
                confidence.write(percent, row=window.row, col=window.col)
    except BaseException:
        for change, confidence in writers:
            change.abandon()
            confidence.abandon()
        raise
    finally:
        for period in reversed(periods):  # GDAL environments nest: the last opened closes first
            period.close()
    for change, confidence in writers:
        change.finish()
        confidence.finish(overview_resampling="average")
    return tallies


@dataclass(frozen=True)
class Tallies:
    """Pixels of every transition code per pair: as written, and as a pixel-by-pixel comparison."""

    written: list[np.ndarray]
    raw: list[np.ndarray]

    @classmethod
    def zeros(cls, pairs: int, coding: TransitionCoding) -> Tallies:
        return cls(
            [np.zeros(coding.codes, dtype=np.int64) for _ in range(pairs)],
            [np.zeros(coding.codes, dtype=np.int64) for _ in range(pairs)],
        )


class Reader:
    """Windows of every period at once, as a decider takes them."""

    def __init__(self, periods: list[Period], series: Series, coding: TransitionCoding, weighs: bool) -> None:
        self.periods, self.series, self.coding, self.weighs = periods, series, coding, weighs

    @property
    def grid(self) -> GeoBox:
        return self.series.grid

    def read(self, window: PixelWindow) -> Block:
        scheme = self.coding.scheme
        indices = np.stack(
            [class_indices(p.read(window), scheme, what=self.series.what(t)) for t, p in enumerate(self.periods)]
        )
        if not self.weighs:
            return Block(indices, None)
        likelihoods = np.stack([p.likelihoods(window, indices[t]) for t, p in enumerate(self.periods)])
        return Block(indices, likelihoods)


def _clean_window(window: PixelWindow, decided: Decided, decider: Decider, reader: Reader, size: int) -> None:
    """Clean each pair's changed mask of one window with the halo the cleaning needs; a change it drops
    keeps the decider's class on both ends (`decided` is updated in place).

    The halo is decided tile by tile on the same block grid as the windows, so memory stays one block of
    every period plus one boolean mask per pair, however large the mapping unit makes the halo.
    """
    cleaning = decider.cleaning
    if cleaning is None or not decided.changed.any():
        return
    row, col, height, width = window.row, window.col, window.height, window.width
    grid = reader.grid
    top, left = max(0, row - cleaning.halo), max(0, col - cleaning.halo)
    bottom, right = min(grid.height, row + height + cleaning.halo), min(grid.width, col + width + cleaning.halo)
    mask = np.zeros((decided.changed.shape[0], bottom - top, right - left), dtype=bool)
    for tile in _tiles(top, bottom, left, right, size):
        rows = slice(tile.row - top, tile.row - top + tile.height)
        cols = slice(tile.col - left, tile.col - left + tile.width)
        same = (tile.row, tile.col) == (row, col)
        mask[:, rows, cols] = decided.changed if same else decider(reader.read(tile)).changed
    margin = (row - top, bottom - row - height, col - left, right - col - width)
    for pair, changed in enumerate(decided.changed):
        if not changed.any():
            continue  # cleaning only removes: a pair with no change in the window keeps none
        dropped = changed & ~clean(mask[pair], cleaning, margin=margin)
        if dropped.any():
            kept = decided.keep(pair)
            decided.origin[pair][dropped] = kept[dropped]
            decided.target[pair][dropped] = kept[dropped]


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

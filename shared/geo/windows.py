"""Pixel windows (the one window type of the project), where the inference windows go and how their outputs
are blended.

Windows sit on one grid for the whole features raster, whatever part of it a process predicts: a tile
of the Argo fan-out computes exactly the windows that touch its region, in the same order as a single
process would, so the mosaic of tiles is the single-process map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

# predict's default inference window and overlap, and what train validates its maps with.
DEFAULT_WINDOW = 512
DEFAULT_OVERLAP = 64


@dataclass(frozen=True)
class Span:
    """Half-open pixel interval [start, stop)."""

    start: int
    stop: int

    def overlaps(self, other: Span) -> bool:
        return self.start < other.stop and other.start < self.stop


@dataclass(frozen=True)
class PixelWindow:
    """A rectangle of pixels of a grid. Reads go through `slices` (numpy), `region` (xarray) or `rasterio()`
    (GDAL), so no other window type is needed."""

    rows: Span
    cols: Span

    @staticmethod
    def at(row: int, col: int, height: int, width: int) -> PixelWindow:
        return PixelWindow(Span(row, row + height), Span(col, col + width))

    @property
    def row(self) -> int:
        return self.rows.start

    @property
    def col(self) -> int:
        return self.cols.start

    @property
    def height(self) -> int:
        return self.rows.stop - self.rows.start

    @property
    def width(self) -> int:
        return self.cols.stop - self.cols.start

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.rows.start, self.rows.stop), slice(self.cols.start, self.cols.stop)

    @property
    def region(self) -> dict[str, slice]:
        return {"y": slice(self.rows.start, self.rows.stop), "x": slice(self.cols.start, self.cols.stop)}

    def rasterio(self) -> Window:
        return Window(self.col, self.row, self.width, self.height)

    def relative_to(self, row: int, col: int) -> PixelWindow:
        """The same pixels counted from (`row`, `col`): where they sit in a part of the grid cut out there."""
        return PixelWindow.at(self.row - row, self.col - col, self.height, self.width)


def blocks(height: int, width: int, size: int) -> list[PixelWindow]:
    """Square windows on multiples of `size` covering a grid, row by row: memory is set by `size`, not by the
    map, and blocks aligned with a store's chunks can be written in parallel."""
    return [
        PixelWindow.at(row, col, min(size, height - row), min(size, width - col))
        for row in range(0, height, size)
        for col in range(0, width, size)
    ]


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Starts along one axis: a stride of window - overlap, the last window flush with the far edge."""
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def window_grid(height: int, width: int, window: int, overlap: int) -> list[PixelWindow]:
    """Every window of the raster, row-major."""
    return [
        PixelWindow(Span(y, y + min(window, height)), Span(x, x + min(window, width)))
        for y in window_starts(height, window, overlap)
        for x in window_starts(width, window, overlap)
    ]


def windows_touching(grid: list[PixelWindow], region: PixelWindow) -> list[PixelWindow]:
    """The windows that contribute to some pixel of `region`, in grid order."""
    return [w for w in grid if w.rows.overlaps(region.rows) and w.cols.overlaps(region.cols)]


def taper(length: int, overlap: int) -> np.ndarray:
    """1-D weights: a raised-cosine ramp over the overlap at both ends, 1 in the middle, never 0.

    Blending logits with these weights hides window edges, where a U-Net sees least context.
    """
    weights = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return weights
    ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1))
    ramp = np.maximum(ramp, 1e-3)
    size = min(overlap, length // 2)
    weights[:size] = ramp[:size]
    weights[length - size :] = ramp[:size][::-1]
    return weights


def blend_weights(height: int, width: int, overlap: int) -> np.ndarray:
    return np.outer(taper(height, overlap), taper(width, overlap)).astype(np.float32)

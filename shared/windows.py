"""Where the inference windows go and how their outputs are blended.

Windows sit on one grid for the whole features raster, whatever part of it a process predicts: a tile
of the Argo fan-out computes exactly the windows that touch its region, in the same order as a single
process would, so the mosaic of tiles is the single-process map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    rows: Span
    cols: Span

    @property
    def height(self) -> int:
        return self.rows.stop - self.rows.start

    @property
    def width(self) -> int:
        return self.cols.stop - self.cols.start


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

"""Feature windows read through a cache of decoded Zarr chunks.

Chips overlap chunk boundaries and each other; reading every window straight from the store would
decode each chunk many times. Chips are visited in row order, and a chunk is dropped once no later chip
can need it, so memory holds about two rows of chunks whatever the AOI's height.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


class ChunkedWindowReader:
    def __init__(self, array: xr.DataArray) -> None:
        self.array = array  # (time, channel, y, x), dask-backed
        chunks = array.chunks
        if chunks is None:
            raise ValueError("the features array must be chunked (opened from Zarr)")
        self.row_edges = np.concatenate([[0], np.cumsum(chunks[2])])
        self.col_edges = np.concatenate([[0], np.cumsum(chunks[3])])
        self.cache: dict[tuple[int, int], np.ndarray] = {}
        self.decoded = 0

    def _chunk(self, i: int, j: int) -> np.ndarray:
        key = (i, j)
        if key not in self.cache:
            y0, y1 = self.row_edges[i], self.row_edges[i + 1]
            x0, x1 = self.col_edges[j], self.col_edges[j + 1]
            self.cache[key] = np.asarray(self.array.isel(y=slice(y0, y1), x=slice(x0, x1)).values, dtype=np.float32)
            self.decoded += 1
        return self.cache[key]

    def window(self, row: int, col: int, size: int) -> np.ndarray:
        """(time, channel, size, size) float32. Call with non-decreasing `row` for the cache to stay small."""
        first_row = int(np.searchsorted(self.row_edges, row, side="right")) - 1
        for key in [k for k in self.cache if k[0] < first_row]:
            del self.cache[key]
        last_row = int(np.searchsorted(self.row_edges, row + size, side="left")) - 1
        first_col = int(np.searchsorted(self.col_edges, col, side="right")) - 1
        last_col = int(np.searchsorted(self.col_edges, col + size, side="left")) - 1
        out = np.empty((*self.array.shape[:2], size, size), dtype=np.float32)
        for i in range(first_row, last_row + 1):
            for j in range(first_col, last_col + 1):
                chunk = self._chunk(i, j)
                y0, x0 = max(row, self.row_edges[i]), max(col, self.col_edges[j])
                y1, x1 = min(row + size, self.row_edges[i + 1]), min(col + size, self.col_edges[j + 1])
                out[:, :, y0 - row : y1 - row, x0 - col : x1 - col] = chunk[
                    :,
                    :,
                    y0 - self.row_edges[i] : y1 - self.row_edges[i],
                    x0 - self.col_edges[j] : x1 - self.col_edges[j],
                ]
        return out

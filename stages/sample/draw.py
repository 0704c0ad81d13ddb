"""The draw: strata counted window by window, then each stratum's chosen pixels found in a second pass.

A stratum's points are ranks among its pixels in reading order (blocks of the fixed `COUNT_BLOCK` grid, rows
within a block), drawn without replacement; the second pass turns ranks into pixels as the blocks go by. So
memory holds one block and the ranks, never the map, and the same map and seed give the same points.
"""

from __future__ import annotations

import numpy as np

from deep_lulc.shared.geo.windows import blocks
from deep_lulc.shared.products.sample import DrawnPoints
from deep_lulc.shared.products.strata import COUNT_BLOCK, StrataMap


def draw(strata: StrataMap, pixels: dict[int, int], counts: dict[int, int], *, seed: int) -> DrawnPoints:
    """`counts[code]` pixels of each stratum, uniformly at random among its `pixels[code]`."""
    rng = np.random.default_rng(seed)
    ranks = {
        code: np.sort(rng.choice(pixels[code], size=taken, replace=False))
        for code, taken in sorted(counts.items())
        if taken > 0
    }
    seen = dict.fromkeys(ranks, 0)
    codes = np.array(sorted(ranks), dtype=np.int64)
    size = int(codes.max()) + 1 if len(codes) else 1
    found_rows: list[np.ndarray] = []
    found_cols: list[np.ndarray] = []
    found_codes: list[np.ndarray] = []
    with strata.open() as dataset:
        for window in blocks(strata.grid.height, strata.grid.width, COUNT_BLOCK):
            block = np.asarray(dataset.read(1, window=window.rasterio())).astype(np.int64, copy=False).ravel()
            present = np.bincount(np.clip(block, 0, size), minlength=size + 1)
            wanted = {}
            for code in ranks:
                start, count = seen[code], int(present[code])
                low, high = np.searchsorted(ranks[code], [start, start + count])
                if high > low:
                    wanted[code] = ranks[code][low:high] - start
                seen[code] = start + count
            if not wanted:
                continue
            order = np.argsort(block, kind="stable")  # each code's pixels together, in reading order
            offsets = np.concatenate([[0], np.cumsum(np.bincount(block[order], minlength=int(block.max()) + 1))])
            for code, local in wanted.items():
                flat = order[offsets[code] + local]
                found_rows.append(window.row + flat // window.width)
                found_cols.append(window.col + flat % window.width)
                found_codes.append(np.full(len(flat), code, dtype=np.int64))
    if not found_codes:
        empty = np.zeros(0, dtype=np.int64)
        return DrawnPoints(empty, empty, empty)
    return DrawnPoints(np.concatenate(found_rows), np.concatenate(found_cols), np.concatenate(found_codes))

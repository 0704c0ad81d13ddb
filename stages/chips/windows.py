"""Where chip windows come from: random, grid or class-balanced draws over the labelled pixels.

Every test on a window (labelled fraction, pixels per class, fits inside a split) is a summed-area table
look-up, for one window or for every window position at once, so sampling and placement cost O(pixels).
"""

from __future__ import annotations

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.chips.params import Sampling


def integral(mask: np.ndarray) -> np.ndarray:
    """Summed-area table with a zero first row and column; int32 while the sums fit (half the memory)."""
    dtype = np.int32 if mask.size < 2**31 else np.int64
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=dtype)
    np.cumsum(mask, axis=0, dtype=dtype, out=table[1:, 1:])
    np.cumsum(table[1:, 1:], axis=1, dtype=dtype, out=table[1:, 1:])
    return table


def window_sum(table: np.ndarray, row: int, col: int, size: int) -> int:
    return int(table[row + size, col + size] - table[row, col + size] - table[row + size, col] + table[row, col])


def all_window_sums(table: np.ndarray, size: int) -> np.ndarray:
    """The sum under every `size` x `size` window, indexed by its top-left corner."""
    return np.asarray(table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size])


def block_sums(table: np.ndarray, block_px: int) -> np.ndarray:
    """Per-block sums (n_rows, n_cols) from a summed-area table; edge blocks are the partial remainder."""
    height, width = table.shape[0] - 1, table.shape[1] - 1
    rows = np.minimum(np.arange(0, height + block_px, block_px), height)
    cols = np.minimum(np.arange(0, width + block_px, block_px), width)
    corners = table[np.ix_(rows, cols)].astype(np.int64)
    return np.asarray(corners[1:, 1:] - corners[:-1, 1:] - corners[1:, :-1] + corners[:-1, :-1])


class WindowStats:
    """Summed-area tables: labelled pixels and per-class pixels of any window in O(1)."""

    def __init__(self, labels: np.ndarray, values: list[int]) -> None:
        self.values = values
        self.labelled = integral(labels != 0)
        self.per_class = {value: integral(labels == value) for value in values}

    def labelled_fraction(self, row: int, col: int, size: int) -> float:
        return window_sum(self.labelled, row, col, size) / (size * size)

    def class_pixels(self, row: int, col: int, size: int) -> np.ndarray:
        return np.array([window_sum(self.per_class[v], row, col, size) for v in self.values], dtype=np.float64)

    def class_total(self, value: int) -> int:
        return int(self.per_class[value][-1, -1])


def labelled_values(labels: np.ndarray) -> list[int]:
    return sorted(int(v) for v in np.unique(labels) if v != 0)


def candidate_windows(
    labels: np.ndarray,
    *,
    mode: Sampling,
    size: int,
    count: int,
    min_labelled: float,
    rng: np.random.Generator,
    stats: WindowStats | None = None,
) -> list[tuple[int, int]]:
    """Top-left corners of the windows to cut, before the split. Random and balanced windows may overlap."""
    height, width = labels.shape
    if height < size or width < size:
        raise BadInputError(
            f"features grid {height} x {width} px is smaller than one {size} px chip", fix="lower --size"
        )
    stats = stats or WindowStats(labels, labelled_values(labels))
    values = stats.values

    def good(row: int, col: int) -> bool:
        return stats.labelled_fraction(row, col, size) >= min_labelled

    if mode == "grid":
        cells = [(r, c) for r in range(0, height - size + 1, size) for c in range(0, width - size + 1, size)]
        windows = [w for w in cells if good(*w)]
        if len(windows) <= count:
            return windows
        # fewer chips than cells: spread them over the whole grid rather than taking the top rows
        spread = np.unique(np.linspace(0, len(windows) - 1, count).round().astype(int))
        return [windows[i] for i in spread.tolist()]
    pool_size = count if mode == "random" else count * 8
    pool: list[tuple[int, int]] = []
    for _ in range(pool_size * 20):
        if len(pool) >= pool_size:
            break
        row, col = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        if good(row, col):
            pool.append((row, col))
    if mode == "random" or not pool:
        return pool
    # balanced: pick class by class, rarest first, each window weighted by its pixels of that class. Weighting
    # every window by rarity-weighted pixels instead lets big patches of fairly rare classes outdraw the
    # rarest class, whose windows hold few of its pixels.
    pixels = np.array([stats.class_pixels(r, c, size) for r, c in pool])
    totals = np.array([stats.class_total(v) for v in values], dtype=np.float64)
    rarest_first = [int(k) for k in np.argsort(totals, kind="stable") if pixels[:, k].sum() > 0]
    free = np.ones(len(pool), dtype=bool)
    picked = []
    for turn in range(min(count, len(pool))):
        target = pixels[:, rarest_first[turn % len(rarest_first)]] if rarest_first else np.ones(len(pool))
        weights = np.where(free, target, 0.0)
        if weights.sum() <= 0:  # that class's windows are all taken: any free window
            weights = free.astype(np.float64)
        choice = int(rng.choice(len(pool), p=weights / weights.sum()))
        free[choice] = False
        picked.append(choice)
    return [pool[i] for i in sorted(picked)]

"""Where chips come from and which split they join, so that validation never leaks into training.

Space is cut into blocks of `block_size` x `block_size` chip cells; whole blocks go to one split (about
`val_fraction` of them to validation, or as a split file says). A chip joins the split of the block under
its centre, and a training chip that overlaps or touches a validation chip is dropped, whatever the
sampling mode: neighbouring pixels are too alike to count as independent validation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError, NothingToDoError
from deep_lulc.stages.chips.params import Sampling

TRAIN, VALIDATION = "train", "validation"


@dataclass(frozen=True)
class Chip:
    row: int
    col: int
    size: int
    split: str
    block: str

    def touches(self, other: Chip) -> bool:
        """Overlap, or adjacent across an edge or a corner."""
        return abs(self.row - other.row) <= self.size and abs(self.col - other.col) <= self.size


def block_id(block_row: int, block_col: int) -> str:
    return f"r{block_row}c{block_col}"


def assign_blocks(
    n_rows: int, n_cols: int, *, val_fraction: float, rng: np.random.Generator, forced: dict[str, str] | None = None
) -> dict[str, str]:
    """Block id -> split. Forced assignments win; blocks a split file leaves out are excluded."""
    ids = [block_id(r, c) for r in range(n_rows) for c in range(n_cols)]
    if forced is not None:
        return {bid: forced[bid] for bid in ids if bid in forced}
    n_val = round(val_fraction * len(ids))
    if val_fraction > 0 and len(ids) > 1:
        n_val = min(max(n_val, 1), len(ids) - 1)
    chosen = set(rng.choice(len(ids), size=n_val, replace=False).tolist()) if n_val else set()
    return {bid: (VALIDATION if i in chosen else TRAIN) for i, bid in enumerate(ids)}


def stratified_assignment(
    windows: list[tuple[int, int]],
    labels: np.ndarray,
    *,
    size: int,
    block_px: int,
    val_fraction: float,
    rng: np.random.Generator,
    tries: int = 64,
) -> dict[str, str]:
    """The best of `tries` random block assignments, judged on the chips that survive the split: both
    splits populated, every class in both where the blocks allow it (a class missing from training cannot
    be learnt; one missing from validation cannot be scored), then the validation share of labelled pixels
    closest to `val_fraction`."""
    height, width = labels.shape
    n_rows, n_cols = -(-height // block_px), -(-width // block_px)
    histograms = {
        (row, col): np.bincount(labels[row : row + size, col : col + size].ravel(), minlength=256)[1:]
        for row, col in windows
    }
    best: tuple[tuple[float, float], dict[str, str]] | None = None
    for _ in range(tries):
        assignment = assign_blocks(n_rows, n_cols, val_fraction=val_fraction, rng=rng)
        try:
            chips, _ = split_windows(windows, size=size, block_px=block_px, assignment=assignment)
        except NothingToDoError:
            continue
        train = sum((histograms[(c.row, c.col)] for c in chips if c.split == TRAIN), np.zeros(255))
        validation = sum((histograms[(c.row, c.col)] for c in chips if c.split == VALIDATION), np.zeros(255))
        present = (train + validation) > 0
        empty = train.sum() == 0 or (val_fraction > 0 and validation.sum() == 0)
        missing = 10 * int((present & (train == 0)).sum()) + 5 * int((present & (validation == 0)).sum())
        share = validation.sum() / max((train + validation).sum(), 1.0)
        score = (1000.0 * empty + missing, abs(share - val_fraction))
        if best is None or score < best[0]:
            best = (score, assignment)
    if best is None:
        raise NothingToDoError("no block assignment leaves any chip", fix="lower --block-size or --min-labelled")
    return best[1]


def read_split_file(path: str) -> dict[str, str]:
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"split file not found: {file}", fix="pass a split.json written by an earlier chips run")
    try:
        document: Any = json.loads(file.read_text())
        blocks = document["blocks"]
        assignment = {str(k): str(v) for k, v in blocks.items()}
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise BadInputError(
            f"split file {file} is not of the form {{'blocks': {{'r0c0': 'train', ...}}}}",
            fix="start from the split.json asset of a chips collection",
        ) from exc
    wrong = sorted({v for v in assignment.values() if v not in (TRAIN, VALIDATION)})
    if wrong:
        raise BadInputError(f"split file {file} names unknown splits {wrong}", fix="use 'train' or 'validation'")
    return assignment


class WindowStats:
    """Summed-area tables: labelled pixels and per-class pixels of any window in O(1)."""

    def __init__(self, labels: np.ndarray, values: list[int]) -> None:
        self.values = values
        self.labelled = _integral(labels != 0)
        self.per_class = {value: _integral(labels == value) for value in values}

    def labelled_fraction(self, row: int, col: int, size: int) -> float:
        return _window_sum(self.labelled, row, col, size) / (size * size)

    def class_pixels(self, row: int, col: int, size: int) -> np.ndarray:
        return np.array([_window_sum(self.per_class[v], row, col, size) for v in self.values], dtype=np.float64)


def _integral(mask: np.ndarray) -> np.ndarray:
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.astype(np.int64).cumsum(axis=0).cumsum(axis=1)
    return table


def _window_sum(table: np.ndarray, row: int, col: int, size: int) -> int:
    return int(table[row + size, col + size] - table[row, col + size] - table[row + size, col] + table[row, col])


def candidate_windows(
    labels: np.ndarray, *, mode: Sampling, size: int, count: int | None, min_labelled: float, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Top-left corners of the windows to cut, before the split."""
    height, width = labels.shape
    if height < size or width < size:
        raise BadInputError(
            f"features grid {height} x {width} px is smaller than one {size} px chip", fix="lower --size"
        )
    values = sorted(int(v) for v in np.unique(labels) if v != 0)
    stats = WindowStats(labels, values)
    grid = [(r, c) for r in range(0, height - size + 1, size) for c in range(0, width - size + 1, size)]
    wanted = count if count is not None else len(grid)

    def good(row: int, col: int) -> bool:
        return stats.labelled_fraction(row, col, size) >= min_labelled

    if mode == "grid":
        windows = [w for w in grid if good(*w)]
        return windows[:wanted]
    pool_size = wanted if mode == "random" else wanted * 8
    pool: list[tuple[int, int]] = []
    for _ in range(pool_size * 20):
        if len(pool) >= pool_size:
            break
        row, col = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        if good(row, col):
            pool.append((row, col))
    if mode == "random" or not pool:
        return pool
    # balanced: weight windows by how much of the rare classes they hold (pixels / class frequency)
    totals = np.array([stats.per_class[v][-1, -1] for v in values], dtype=np.float64)
    rarity = 1.0 / np.maximum(totals / max(totals.sum(), 1.0), 1e-6)
    scores = np.array([stats.class_pixels(r, c, size) @ rarity for r, c in pool])
    probabilities = scores / scores.sum()
    picked = rng.choice(len(pool), size=min(wanted, len(pool)), replace=False, p=probabilities)
    return [pool[i] for i in sorted(picked.tolist())]


def split_windows(
    windows: list[tuple[int, int]], *, size: int, block_px: int, assignment: dict[str, str]
) -> tuple[list[Chip], int]:
    """Chips with their split; returns also how many training chips were dropped for touching validation."""
    chips = []
    for row, col in windows:
        bid = block_id((row + size // 2) // block_px, (col + size // 2) // block_px)
        if bid in assignment:
            chips.append(Chip(row, col, size, assignment[bid], bid))
    validation = [c for c in chips if c.split == VALIDATION]
    kept = [c for c in chips if c.split == VALIDATION or not any(c.touches(v) for v in validation)]
    if not kept:
        raise NothingToDoError("no chip window survives the filters", fix="lower --min-labelled or --size")
    return kept, len(chips) - len(kept)

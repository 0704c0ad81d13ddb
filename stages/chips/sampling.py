"""Which split a chip joins, so that validation never leaks into training and few windows are wasted.

Space is cut into blocks of `block_size` x `block_size` chip cells; whole blocks go to one split (chosen
so every class lands in both splits where the labels allow it, with about `val_fraction` of the labelled
pixels in validation, or as a split file says). A window joins the split of the block under its centre.
Validation chips stay where they were drawn; a training window that would overlap or touch one
(neighbouring pixels are too alike to count as independent validation) is moved to the nearest position
clear of every validation chip with its centre still in a training block, whatever the sampling mode.
Only windows with no such position within a chip's length are dropped, where dropping every training
window that touched validation used to cost a third to a half of the chips of small AOIs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.products.chips import TRAIN as TRAIN
from deep_lulc.shared.products.chips import VALIDATION as VALIDATION
from deep_lulc.stages.chips.windows import WindowStats, all_window_sums, block_sums, labelled_values

CODES = {TRAIN: 1, VALIDATION: 2}
SPLITS: dict[int, str | None] = {0: None, 1: TRAIN, 2: VALIDATION}
STRATIFY_TRIES = 256
MIN_SPLIT_CHIPS = 8
PRESENT_PX, PRESENT_SHARE = 100, 0.02  # a class is in a split with this many chip pixels (or share)
EXACT_BUDGET, MAX_EXACT = 16_000_000, 128  # shortlisted assignments checked on placed chips


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


@dataclass(frozen=True)
class ForcedSplit:
    """A split.json: block id -> split, and the grid it was made on (absent in hand-written files)."""

    blocks: dict[str, str]
    chip_size: int | None = None
    block_size: int | None = None


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


def read_split_file(path: str) -> ForcedSplit:
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"split file not found: {file}", fix="pass a split.json written by an earlier chips run")
    try:
        document: Any = json.loads(file.read_text())
        blocks = document["blocks"]
        assignment = {str(k): str(v) for k, v in blocks.items()}
        chip_size, block_size = document.get("chip_size"), document.get("block_size")
        grid = [int(v) if v is not None else None for v in (chip_size, block_size)]
    except (json.JSONDecodeError, KeyError, AttributeError, TypeError, ValueError) as exc:
        raise BadInputError(
            f"split file {file} is not of the form {{'blocks': {{'r0c0': 'train', ...}}}}",
            fix="start from the split.json asset of a chips collection",
        ) from exc
    wrong = sorted({v for v in assignment.values() if v not in (TRAIN, VALIDATION)})
    if wrong:
        raise BadInputError(f"split file {file} names unknown splits {wrong}", fix="use 'train' or 'validation'")
    if any(v is not None and v < 1 for v in grid):
        raise BadInputError(f"split file {file} has a chip or block size below 1", fix="use the file chips wrote")
    return ForcedSplit(assignment, grid[0], grid[1])


class SplitRegions:
    """Where a chip of each split may go: top-left corners whose window has its centre in a block of that
    split and enough labels; a training corner is also given up once it would touch a validation chip."""

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        size: int,
        block_px: int,
        assignment: dict[str, str],
        labelled_table: np.ndarray,
        min_labelled: float,
    ) -> None:
        height, width = shape
        self.size, self.block_px = size, block_px
        n_rows, n_cols = -(-height // block_px), -(-width // block_px)
        self.grid = np.array(
            [[CODES.get(assignment.get(block_id(r, c), ""), 0) for c in range(n_cols)] for r in range(n_rows)],
            dtype=np.int8,
        ).reshape(n_rows, n_cols)
        centre = size // 2
        row_blocks = (np.arange(height - size + 1) + centre) // block_px
        col_blocks = (np.arange(width - size + 1) + centre) // block_px
        centre_split = self.grid[np.ix_(row_blocks, col_blocks)]
        enough = all_window_sums(labelled_table, size) >= min_labelled * size * size
        self.valid = {split: (centre_split == code) & enough for split, code in CODES.items()}

    def split_at(self, row: int, col: int) -> str | None:
        """The split of the block under the window's centre (None: a block the split file leaves out)."""
        centre = self.size // 2
        return SPLITS[int(self.grid[(row + centre) // self.block_px, (col + centre) // self.block_px])]

    def chip(self, split: str, row: int, col: int) -> Chip:
        centre = self.size // 2
        return Chip(
            row, col, self.size, split, block_id((row + centre) // self.block_px, (col + centre) // self.block_px)
        )

    def claim(self, chip: Chip) -> None:
        """A validation chip takes the training corners whose window would overlap or touch it."""
        if chip.split == VALIDATION:
            reach = self.size
            r0, c0 = max(0, chip.row - reach), max(0, chip.col - reach)
            self.valid[TRAIN][r0 : chip.row + reach + 1, c0 : chip.col + reach + 1] = False

    def place(self, split: str, row: int, col: int, taken: set[tuple[int, int]]) -> tuple[int, int] | None:
        """The free valid corner of `split` nearest to (row, col), within a chip size and a pixel (enough
        to clear a validation chip); ties go to the smallest move, then the lowest row and column."""
        valid = self.valid[split]
        if valid[row, col] and (row, col) not in taken:
            return row, col
        reach = self.size + 1
        r0, c0 = max(0, row - reach), max(0, col - reach)
        points = np.argwhere(valid[r0 : row + reach + 1, c0 : col + reach + 1])
        dr, dc = points[:, 0] + r0 - row, points[:, 1] + c0 - col
        order = np.lexsort((dc, dr, np.abs(dr) + np.abs(dc), np.maximum(np.abs(dr), np.abs(dc))))
        for index in order.tolist():
            spot = int(points[index, 0]) + r0, int(points[index, 1]) + c0
            if spot not in taken:
                return spot
        return None

    def richest(self, split: str, table: np.ndarray, taken: set[tuple[int, int]]) -> tuple[int, int] | None:
        """The free valid corner of `split` whose window holds most of the pixels counted by `table`."""
        pixels = np.where(self.valid[split], all_window_sums(table, self.size), 0)
        for spot in taken:
            pixels[spot] = 0
        if pixels.size == 0 or pixels.max() <= 0:
            return None
        best = np.unravel_index(int(np.argmax(pixels)), pixels.shape)
        return int(best[0]), int(best[1])


@dataclass(frozen=True)
class Placement:
    chips: list[Chip]
    shifted: int  # windows moved: training ones off a validation chip, or any off a corner already taken
    dropped: int  # windows with no free corner of their split nearby
    added: int  # chips added for classes a split lacked


def place_windows(
    windows: list[tuple[int, int]], regions: SplitRegions, *, stats: WindowStats | None = None
) -> Placement:
    """Chips with their split, validation first: each validation window where it was drawn, each
    training window at the nearest corner clear of every validation chip. With `stats`, each split then
    gets one more chip per class it lacks but can hold (the window of that split richest in the class),
    validation before training, so no chip added later can touch one of the other split."""
    taken: set[tuple[int, int]] = set()
    chips: list[Chip] = []
    shifted = dropped = added = 0
    by_split: dict[str | None, list[tuple[int, int]]] = {VALIDATION: [], TRAIN: [], None: []}
    for row, col in windows:
        by_split[regions.split_at(row, col)].append((row, col))
    dropped += len(by_split[None])  # blocks the split file leaves out
    for split in (VALIDATION, TRAIN):
        own: list[Chip] = []
        for row, col in by_split[split]:
            spot = regions.place(split, row, col, taken)
            if spot is None:
                dropped += 1
                continue
            taken.add(spot)
            shifted += spot != (row, col)
            own.append(regions.chip(split, *spot))
        if stats is not None:
            extra = _fill_classes(own, split, regions, stats, taken)
            own += extra
            added += len(extra)
        for chip in own:
            regions.claim(chip)
        chips += own
    kept = without_leaks(chips)
    return Placement(kept, shifted, dropped + len(chips) - len(kept), added)


def _fill_classes(
    chips: list[Chip], split: str, regions: SplitRegions, stats: WindowStats, taken: set[tuple[int, int]]
) -> list[Chip]:
    pixels = sum((stats.class_pixels(c.row, c.col, c.size) for c in chips), np.zeros(len(stats.values)))
    enough = presence_threshold(stats)
    added: list[Chip] = []
    for k, value in enumerate(stats.values):
        if pixels[k] >= enough[k]:
            continue
        spot = regions.richest(split, stats.per_class[value], taken)
        if spot is None:
            continue  # no window of this split holds the class: the labels do not allow it
        taken.add(spot)
        chip = regions.chip(split, *spot)
        added.append(chip)
        pixels = pixels + stats.class_pixels(chip.row, chip.col, chip.size)
    return added


def presence_threshold(stats: WindowStats) -> np.ndarray:
    """Chip pixels of each class (as `stats.values`) a split needs for the class to count as in it: a few
    stray pixels at a chip's edge neither teach a class nor score it."""
    totals = np.array([stats.class_total(v) for v in stats.values], dtype=np.float64)
    return np.maximum(np.minimum(PRESENT_PX, PRESENT_SHARE * totals), 1.0)


def without_leaks(chips: list[Chip]) -> list[Chip]:
    """Drop training chips that touch a validation chip (none do once placed; kept as the invariant's guard)."""
    validation = [c for c in chips if c.split == VALIDATION]
    if not validation:
        return chips
    val_rows = np.array([c.row for c in validation])
    val_cols = np.array([c.col for c in validation])
    return [
        c
        for c in chips
        if c.split == VALIDATION
        or not ((np.abs(val_rows - c.row) <= c.size) & (np.abs(val_cols - c.col) <= c.size)).any()
    ]


def full_blocks(length: int, block_px: int, size: int) -> np.ndarray:
    """Along one axis, whether each block can hold a window's centre: a last block narrower than half a
    chip cannot (windows stay inside the grid), so it holds no chip."""
    n = -(-length // block_px)
    full = np.ones(n, dtype=bool)
    full[-1] = length - (n - 1) * block_px >= size - size // 2
    return full


def block_histograms(stats: WindowStats, shape: tuple[int, int], *, size: int, block_px: int) -> np.ndarray:
    """Labelled pixels per class (columns, as `stats.values`) of each block (rows, row-major), zero for
    blocks that can hold no chip."""
    rows, cols = full_blocks(shape[0], block_px, size), full_blocks(shape[1], block_px, size)
    usable = np.outer(rows, cols).ravel()
    hist = np.stack([block_sums(stats.per_class[v], block_px).ravel() for v in stats.values], axis=1)
    return np.asarray(hist * usable[:, None])


def stratified_assignment(
    windows: list[tuple[int, int]],
    labels: np.ndarray,
    *,
    size: int,
    block_px: int,
    val_fraction: float,
    rng: np.random.Generator,
    min_labelled: float = 0.0,
    stats: WindowStats | None = None,
    fill_classes: bool = False,
    tries: int = STRATIFY_TRIES,
) -> dict[str, str]:
    """Block id -> split, class-aware: among random and class-by-class (rarest first) draws of validation
    blocks, the best on the block histograms are checked on the chips `windows` would give once placed.
    Judged in order: both splits get chips, and more than a handful (8, or half their share of the
    windows); every class in training and, if two blocks or more hold it, in validation, by 100 px or 2 %
    of its labels (missing from training counts double: it cannot be learnt; with `fill_classes`, counted
    after the chips added for missing classes); then the validation share of labelled pixels, overall and
    per class, closest to `val_fraction`."""
    height, width = labels.shape
    n_rows, n_cols = -(-height // block_px), -(-width // block_px)
    ids = [block_id(r, c) for r in range(n_rows) for c in range(n_cols)]
    stats = stats or WindowStats(labels, labelled_values(labels))
    if val_fraction <= 0 or not stats.values:
        return dict.fromkeys(ids, TRAIN)
    hist = block_histograms(stats, (height, width), size=size, block_px=block_px)
    labelled = np.flatnonzero(hist.sum(axis=1) > 0)
    if len(labelled) < 2:
        return dict.fromkeys(ids, TRAIN)  # nothing to split: the stage reports the empty validation split
    spread = (hist > 0).sum(axis=0) >= 2  # classes that can be in both splits at all
    candidates = list(dict.fromkeys(_draws(hist, labelled, spread, val_fraction, rng, tries)))
    candidates.sort(key=lambda chosen: _block_score(hist, chosen, spread, val_fraction))
    shortlist = candidates[: min(max(EXACT_BUDGET // max(labels.size, 1), 1), MAX_EXACT)]  # each costs O(pixels)

    def assignment_of(chosen: frozenset[int]) -> dict[str, str]:
        return {bid: (VALIDATION if i in chosen else TRAIN) for i, bid in enumerate(ids)}

    enough = presence_threshold(stats)
    few = {
        split: min(MIN_SPLIT_CHIPS, math.ceil(share * len(windows) / 2))
        for split, share in ((TRAIN, 1 - val_fraction), (VALIDATION, val_fraction))
    }

    def exact_score(chosen: frozenset[int]) -> tuple[int, int, int, float]:
        regions = SplitRegions(
            labels.shape,
            size=size,
            block_px=block_px,
            assignment=assignment_of(chosen),
            labelled_table=stats.labelled,
            min_labelled=min_labelled,
        )
        chips = place_windows(windows, regions, stats=stats if fill_classes else None).chips
        sums = {split: np.zeros(len(stats.values)) for split in (TRAIN, VALIDATION)}
        for chip in chips:
            sums[chip.split] += stats.class_pixels(chip.row, chip.col, size)
        n = {split: sum(c.split == split for c in chips) for split in (TRAIN, VALIDATION)}
        empty = sum(int(n[split] == 0) for split in n)
        thin = sum(int(n[split] < few[split]) for split in n)
        # every class should be learnt; only those in two blocks or more can be scored as well
        missing = 2 * int((sums[TRAIN] < enough).sum()) + int((spread & (sums[VALIDATION] < enough)).sum())
        return empty, thin, missing, _deviation(sums[TRAIN], sums[VALIDATION], val_fraction)

    best = min(shortlist, key=exact_score)  # the first of equals: the better block score
    return assignment_of(best)


def _draws(
    hist: np.ndarray,
    labelled: np.ndarray,
    spread: np.ndarray,
    val_fraction: float,
    rng: np.random.Generator,
    tries: int,
) -> list[frozenset[int]]:
    """Candidate sets of validation blocks: half drawn at random, half class by class, rarest first."""
    n = len(labelled)
    target = round(val_fraction * n)
    counts = sorted({min(max(k, 1), n - 1) for k in (target - 1, target, target + 1)})
    holders = {int(k): labelled[hist[labelled, k] > 0] for k in np.flatnonzero(spread)}
    draws = []
    for attempt in range(tries):
        n_val = counts[attempt % len(counts)]
        if attempt % 2 == 0:
            draws.append(frozenset(int(b) for b in rng.choice(labelled, size=n_val, replace=False)))
            continue
        chosen: set[int] = set()
        ties = rng.random(len(holders))
        for _, _, k in sorted((len(blocks), tie, k) for tie, (k, blocks) in zip(ties, holders.items(), strict=True)):
            if len(chosen) >= n_val:
                break
            blocks = holders[k]
            if any(int(b) in chosen for b in blocks):
                continue  # already in validation
            if len(blocks) < 2:
                continue  # validation would take the class away from training
            weights = np.sqrt(hist[blocks, k].astype(np.float64))
            chosen.add(int(rng.choice(blocks, p=weights / weights.sum())))
        rest = np.array([b for b in labelled if int(b) not in chosen])
        if len(chosen) < n_val:
            chosen |= {int(b) for b in rng.choice(rest, size=n_val - len(chosen), replace=False)}
        draws.append(frozenset(chosen))
    return draws


def _block_score(
    hist: np.ndarray, chosen: frozenset[int], spread: np.ndarray, val_fraction: float
) -> tuple[int, float]:
    mask = np.zeros(len(hist), dtype=bool)
    mask[list(chosen)] = True
    validation, train = hist[mask].sum(axis=0), hist[~mask].sum(axis=0)
    missing = 2 * int(((hist.sum(axis=0) > 0) & (train == 0)).sum()) + int((spread & (validation == 0)).sum())
    return missing, _deviation(train, validation, val_fraction)


def _deviation(train: np.ndarray, validation: np.ndarray, val_fraction: float) -> float:
    """How far the validation share of labelled pixels is from `val_fraction`, overall plus half the
    mean over the classes present (stratification)."""
    total = train + validation
    share = float(validation.sum() / max(total.sum(), 1.0))
    present = total > 0
    per_class = float(np.abs(validation[present] / total[present] - val_fraction).mean()) if present.any() else 0.0
    return abs(share - val_fraction) + 0.5 * per_class

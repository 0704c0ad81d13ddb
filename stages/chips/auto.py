"""Chip size, chip count and split block size chosen from the AOI when the options leave them out.

Fixed defaults fail at one end of the AOI range or the other: 128 px chips in blocks of 4 give a 3 x 3 km
AOI four windows and no validation block, and a count tied to the grid gives a large AOI few chips. So:

- count grows with the square root of the labelled area, 80 windows on a 3 x 3 km AOI at 10 m, between
  48 and 1,024: windows overlap (each labelled pixel sits in about 4 of them on small AOIs), and the
  pixel volume keeps following the area as the chip size grows in its turn;
- size is 64 px, 32 where four chips do not fit side by side (16 only below two of 32); 128 or 256 px
  once the windows would cover the labelled pixels at most 4 times over at that size and the AOI is at
  least four chips across, so large AOIs get more context per chip rather than near-duplicate windows;
- blocks are 2 to 4 chips across: the largest that still gives 16 labelled blocks to choose validation
  from, else 2, so a validation block has room for windows in more than one position; 1 only on AOIs
  too small for 6 blocks of 2 chips, where classes could not be spread over both splits otherwise.

A split file written by an earlier run fixes the block grid it was made for: its chip and block sizes
fill in whatever the options leave out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.chips.sampling import full_blocks
from deep_lulc.stages.chips.windows import block_sums

SIZES = (16, 32, 64, 128, 256)
BASE_SIZE = 64
MIN_AUTO_SIZE = 32  # the U-Net's encoders halve a chip five times
REFERENCE_AREA = 300 * 300  # labelled px of a 3 x 3 km AOI at 10 m
REFERENCE_COUNT = 80
MIN_COUNT, MAX_COUNT = 48, 1024
MAX_COVERAGE = 4.0  # windows x chip area / labelled area, above which a bigger chip is not chosen
BLOCK_SIZES = (4, 3, 2)
MIN_BLOCKS = 16
FEW_BLOCKS = 6  # below this many blocks of 2 chips, blocks of one chip stratify better


@dataclass(frozen=True)
class Layout:
    size: int
    count: int
    block_size: int
    auto: tuple[str, ...]  # the options resolved here rather than given
    labelled: int

    @property
    def block_px(self) -> int:
        return self.size * self.block_size

    @property
    def coverage(self) -> float:
        return self.count * self.size**2 / max(self.labelled, 1)

    def describe(self, n_blocks: int, n_validation: int) -> str:
        def tag(name: str) -> str:
            return " (auto)" if name in self.auto else ""

        return (
            f"chips: size {self.size} px{tag('size')}, count {self.count}{tag('count')} "
            f"(~{self.coverage:.1f}x coverage of {self.labelled} labelled px), block size {self.block_size} "
            f"chips = {self.block_px} px{tag('block_size')} ({n_blocks} labelled blocks, {n_validation} validation)"
        )


def auto_count(labelled: int) -> int:
    """Windows to draw for `labelled` labelled pixels: ~sqrt(area), bounded."""
    scaled = round(REFERENCE_COUNT * math.sqrt(max(labelled, 0) / REFERENCE_AREA))
    return int(min(max(scaled, MIN_COUNT), MAX_COUNT))


def auto_size(height: int, width: int, *, labelled: int, count: int) -> int:
    side = min(height, width)
    fitting = (
        [s for s in SIZES if s >= MIN_AUTO_SIZE and 4 * s <= side]
        or [s for s in SIZES if 2 * s <= side]
        or [s for s in SIZES if s <= side]
    )
    if not fitting:
        raise BadInputError(
            f"features grid {height} x {width} px is smaller than one {SIZES[0]} px chip",
            fix="build the features for a larger AOI",
        )
    size = max(s for s in fitting if s <= BASE_SIZE)
    for bigger in (s for s in SIZES if s > BASE_SIZE):
        if 4 * bigger <= side and count * bigger**2 <= MAX_COVERAGE * labelled:
            size = bigger
    return size


def labelled_blocks(labelled_table: np.ndarray, block_px: int, size: int) -> int:
    """Blocks at least a chip across that hold labels: the ones validation can be chosen from."""
    height, width = labelled_table.shape[0] - 1, labelled_table.shape[1] - 1
    full = np.outer(full_blocks(height, block_px, size), full_blocks(width, block_px, size))
    return int(((block_sums(labelled_table, block_px) > 0) & full).sum())


def auto_block_size(labelled_table: np.ndarray, size: int) -> int:
    for block_size in BLOCK_SIZES:
        if labelled_blocks(labelled_table, block_size * size, size) >= MIN_BLOCKS:
            return block_size
    return 2 if labelled_blocks(labelled_table, 2 * size, size) >= FEW_BLOCKS else 1


def resolve_layout(
    labelled_table: np.ndarray,
    *,
    size: int | None,
    count: int | None,
    block_size: int | None,
    split_size: int | None = None,
    split_block_size: int | None = None,
) -> Layout:
    """The given values, with the missing ones chosen for this AOI (`split_*`: a split file's grid)."""
    height, width = labelled_table.shape[0] - 1, labelled_table.shape[1] - 1
    labelled = int(labelled_table[-1, -1])
    auto = []
    resolved_count = count if count is not None else auto_count(labelled)
    if count is None:
        auto.append("count")
    resolved_size = _first_given(size, split_size)
    if resolved_size is None:
        resolved_size = auto_size(height, width, labelled=labelled, count=resolved_count)
        auto.append("size")
    resolved_block = _first_given(block_size, split_block_size)
    if resolved_block is None:
        resolved_block = auto_block_size(labelled_table, resolved_size)
        auto.append("block_size")
    return Layout(resolved_size, resolved_count, resolved_block, tuple(auto), labelled)


def _first_given(*values: int | None) -> int | None:
    """The option's value, else the split file's, else None (choose one for this AOI)."""
    return next((value for value in values if value is not None), None)

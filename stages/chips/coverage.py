"""Which classes each split ended up holding, said in words: a class missing from validation cannot be
scored, one missing from training cannot be learnt, and the fix differs with why it is missing."""

from __future__ import annotations

import numpy as np

from deep_lulc.shared.lulc.classes import ClassScheme
from deep_lulc.stages.chips.sampling import CODES, TRAIN, VALIDATION, SplitRegions, presence_threshold
from deep_lulc.stages.chips.windows import WindowStats, all_window_sums, block_sums


def split_warnings(
    counts: dict[str, dict[int, int]],
    scheme: ClassScheme,
    *,
    stats: WindowStats,
    regions: SplitRegions,
    block_px: int,
    filled: bool,
) -> list[str]:
    """A line per class missing (or down to a few pixels) in one split, saying whether the labels allow it
    in both at all."""
    warnings: list[str] = []
    enough = dict(zip(stats.values, presence_threshold(stats).tolist(), strict=True))
    splits = [TRAIN, VALIDATION] if (regions.grid == CODES[VALIDATION]).any() else [TRAIN]  # --val-fraction 0
    for cls in scheme.labelled:
        if cls.value not in enough:
            continue  # not in the labels of this AOI
        pixels_in = {split: counts[split].get(cls.value, 0) for split in (TRAIN, VALIDATION)}
        weak = [split for split in splits if pixels_in[split] < enough[cls.value]]
        if not weak:
            continue
        lack = weak[0]
        have = VALIDATION if lack == TRAIN else TRAIN
        if len(splits) == 1:
            warnings.append(f"class {cls.value} {cls.name} has only {pixels_in[lack]} px in training")
            continue
        words = {TRAIN: "training", VALIDATION: "validation"}
        blocks = block_sums(stats.per_class[cls.value], block_px)
        n_blocks, pixels = int((blocks > 0).sum()), int(blocks.sum())
        if len(weak) == len(splits) == 2:
            warnings.append(
                f"class {cls.value} {cls.name} is in neither split: no chip holds enough of its "
                f"{pixels} labelled px ({n_blocks} blocks)"
            )
            continue
        if pixels_in[lack] == 0:
            message = f"class {cls.value} {cls.name} is in {words[have]} but absent from {words[lack]}"
        else:
            message = f"class {cls.value} {cls.name} has only {pixels_in[lack]} px in {words[lack]}"
        reach = np.where(regions.valid[lack], all_window_sums(stats.per_class[cls.value], regions.size), 0)
        reachable = reach.size > 0 and reach.max() > 0
        if not reachable and n_blocks < 2:
            message += f": its {pixels} labelled px lie in one block, so it cannot be in both splits"
        elif not reachable:
            message += f": no {words[lack]} chip can hold it (its {pixels} labelled px lie in {n_blocks} blocks)"
        elif filled:
            message += f" (no {words[lack]} chip holds more than {int(reach.max())} px of it)"
        else:
            message += " (leave --count out to add a chip for it)"
        warnings.append(message)
    return warnings

"""The joint change decision: both periods' class probabilities decide together, then slivers and specks go.

Two maps classified independently disagree wherever either is unsure (mixed pixels on parcel borders,
classes that flicker between similar covers), and a per-pixel comparison reports every disagreement as a
change. Here a pixel changes only when the two periods are confidently different: the probability that
both periods hold the same class, `sum_c p_before(c) * p_after(c)`, is low and each period is sure of its
own class. What survives is opened (strips narrower than the structuring square vanish: border slivers)
and regions smaller than the minimum mapping unit are dropped.

Everything works on one window with a halo. The opening reads `2 * radius` px beyond what it decides; the
mapping unit reads `unit` px beyond: a region that reaches the halo's edge from the core already holds at
least `unit` pixels (8-connected steps advance at most one pixel), so it is kept, and one that does not
reach the edge lies whole inside the window and is measured exactly. The result therefore equals doing
the whole map at once, while memory stays set by the window. The same cleaning (`Cleaning`, `clean`)
follows the consistent decision of a series (decisions.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class Cleaning:
    """The cleaning of a changed mask: the opening's radius and the mapping unit in pixels."""

    opening_radius: int
    unit_pixels: int

    @property
    def halo(self) -> int:
        """Pixels read beyond a window so that its decision equals the whole map's."""
        return self.unit_pixels + 2 * self.opening_radius

    @property
    def active(self) -> bool:
        return self.opening_radius > 0 or self.unit_pixels > 1


@dataclass(frozen=True)
class JointRule(Cleaning):
    """Thresholds of the joint decision and of the cleaning that follows it."""

    same_below: float
    min_confidence: float

    def record(self, *, unit_ha: float, probabilities: dict[str, bool]) -> dict[str, Any]:
        """What the change item says about how it was decided."""
        return {
            "method": "joint",
            "probabilities": probabilities,
            "same_class_below": self.same_below,
            "min_confidence": self.min_confidence,
            "opening_radius": self.opening_radius,
            "min_mapping_unit_ha": unit_ha,
            "min_mapping_unit_px": self.unit_pixels,
        }


def unit_pixels(unit_ha: float, pixel_area_m2: float) -> int:
    """Pixels a region needs to reach `unit_ha` (0: no minimum)."""
    if unit_ha <= 0:
        return 0
    return max(1, math.ceil(unit_ha * 10_000 / pixel_area_m2 - 1e-9))


def one_hot(indices: np.ndarray, n: int) -> np.ndarray:
    """(n, rows, cols) certainty in each pixel's mapped class; zero where the map has no data."""
    hot = np.zeros((n, *indices.shape), dtype=np.float32)
    rows, cols = np.nonzero(indices >= 0)
    hot[indices[rows, cols], rows, cols] = 1.0
    return hot


def as_probabilities(percent: np.ndarray, indices: np.ndarray, *, nodata: int) -> np.ndarray:
    """Class probabilities (summing to one) from a (n, rows, cols) uint8-percent block; the mapped class, as
    certain, where a pixel's probabilities are nodata or all zero."""
    n = percent.shape[0]
    values = percent.astype(np.float32)
    missing = (percent == nodata).any(axis=0)
    values[:, missing] = 0.0
    total = values.sum(axis=0)
    usable = total > 0
    values[:, usable] /= total[usable]
    fallback = ~usable & (indices >= 0)
    if fallback.any():
        values[:, fallback] = one_hot(np.where(fallback, indices, -1), n)[:, fallback]
    return values


def decide(
    before: np.ndarray, after: np.ndarray, p_before: np.ndarray, p_after: np.ndarray, rule: JointRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(changed, from_index, to_index) of every pixel before cleaning; indices are -1 where either map has
    no data. Unchanged pixels get the one class both periods most likely share."""
    valid = (before >= 0) & (after >= 0)
    same = (p_before * p_after).sum(axis=0)
    safe_before, safe_after = np.maximum(before, 0), np.maximum(after, 0)
    top_before = np.take_along_axis(p_before, safe_before[None], axis=0)[0]
    top_after = np.take_along_axis(p_after, safe_after[None], axis=0)[0]
    confident = (top_before >= rule.min_confidence) & (top_after >= rule.min_confidence)
    # Both maps must name different classes: two diffuse but agreeing distributions can have a low
    # probability of sameness without any evidence of a change.
    changed = valid & (before != after) & (same < rule.same_below) & confident
    origin = np.where(changed, before, -1)
    target = np.where(changed, after, -1)
    stable = valid & ~changed
    shared = stable_class(p_before, p_after, before)
    origin[stable] = shared[stable]
    target[stable] = shared[stable]
    return changed, origin, target


def stable_class(p_before: np.ndarray, p_after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The class most likely held in both periods; the earlier map's class where no class is possible in
    both (two certain, different maps whose change was then cleaned away: the earlier class stays)."""
    joint = p_before * p_after
    best = joint.argmax(axis=0)
    return np.where(joint.max(axis=0) > 0, best, before)


def clean(changed: np.ndarray, rule: Cleaning, *, margin: tuple[int, int, int, int]) -> np.ndarray:
    """The changed mask after the opening and the mapping unit, for the block inside `margin` (top, bottom,
    left, right: halo pixels read on each side). A side with less than the full halo ends at the map's edge,
    beyond which nothing changed, so it needs none."""
    mask = changed
    radius = rule.opening_radius
    if radius > 0 and mask.any():
        square = np.ones((2 * radius + 1, 2 * radius + 1), dtype=bool)
        mask = ndimage.binary_dilation(
            ndimage.binary_erosion(mask, structure=square, border_value=0), structure=square, border_value=0
        )
    # Drop what the opening may have got wrong for want of context: 2 * radius px inside each full halo.
    inner = [2 * radius if side >= rule.halo else 0 for side in margin]
    mask = mask[inner[0] : mask.shape[0] - inner[1], inner[2] : mask.shape[1] - inner[3]]
    if rule.unit_pixels > 1 and mask.any():
        labels, count = ndimage.label(mask, structure=EIGHT_NEIGHBOURS)
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        big = sizes >= rule.unit_pixels
        big[0] = False
        mask = big[labels]
    rest = [side - cut for side, cut in zip(margin, inner, strict=True)]
    return mask[rest[0] : mask.shape[0] - rest[1], rest[2] : mask.shape[1] - rest[3]]

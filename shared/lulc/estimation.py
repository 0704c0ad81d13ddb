"""Area and accuracy from a stratified random sample: the estimators of Olofsson et al. (2014).

A map's pixel counts are biased by its errors: a class the model over-predicts is over-counted. A probability
sample labelled by an analyst turns the map into strata whose weights are known exactly (their pixel counts),
and the sample says how each stratum is really composed. Olofsson, Foody, Herold, Stehman, Woodcock and
Wulder (2014), "Good practices for estimating area and assessing accuracy of land change", Remote Sensing of
Environment 148:42-57, give the estimators for strata that are the map's own classes:

- `p_ij = W_i * n_ij / n_i.`, the error matrix in estimated area proportions (W_i: stratum i's share of the
  map, n_ij: sample units of map class i with reference class j);
- area of class j: `A * p_.j`, standard error `A * sqrt(sum_i W_i^2 * (n_ij/n_i.)(1 - n_ij/n_i.)/(n_i. - 1))`;
- user's accuracy `n_ii/n_i.`, overall accuracy `sum_i p_ii`, producer's accuracy `p_jj / p_.j`, with their
  variances (equations 4 to 7 of the paper).

They are written here once in Stehman's (2014) general form, ratio estimators of stratum means, which equal
Olofsson's closed forms when the strata are the map's classes and also serve any other reporting category
(a change map's later-period classes, whose strata are transitions). The finite population correction is
left out, as in the paper (samples are a vanishing share of the pixels); a stratum sampled whole (a census of
a tiny stratum) has no sampling error, so it contributes no variance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Z95 = 1.96  # intervals are estimate +- 1.96 SE, the normal approximation Olofsson et al. (2014) report with


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error; `ci95` is the half-width of the 95 % interval."""

    value: float
    se: float

    @property
    def ci95(self) -> float:
        return Z95 * self.se


@dataclass(frozen=True)
class CategoryEstimates:
    """One reporting category (a class or a transition): its area share and its accuracies."""

    mapped_share: float  # the map's own share (pixel count / total)
    share: Estimate  # error-adjusted share of the area
    users: Estimate | None  # None when the map has none of it
    producers: Estimate | None  # None when the sample found none of it
    sample_count: int  # sample units the map assigns to it


@dataclass(frozen=True)
class SampleEstimates:
    """Everything `area` reports, in proportions of the mapped area."""

    categories: tuple[CategoryEstimates, ...]
    overall: Estimate
    proportions: np.ndarray  # (categories, categories): map (rows) by reference (columns), estimated shares
    counts: np.ndarray  # the same matrix in sample units


def _ratio(y: np.ndarray, x: np.ndarray, strata: np.ndarray, sizes: np.ndarray, sampled: np.ndarray) -> Estimate | None:
    """Stehman's (2014) combined ratio estimator of sum(y)/sum(x) over the population, its SE by the
    linearised variance `1/X^2 * sum_h N_h^2 * (s_yh^2 + R^2 s_xh^2 - 2 R s_xyh) / n_h` (no fpc; a census
    stratum contributes none). `sizes[h]` = N_h, `sampled[h]` = n_h, `strata[u]` = h of unit u."""
    n_h = sampled.astype(np.float64)
    y_mean = np.bincount(strata, weights=y, minlength=len(sizes)) / np.maximum(n_h, 1)
    x_mean = np.bincount(strata, weights=x, minlength=len(sizes)) / np.maximum(n_h, 1)
    total_x = float((sizes * x_mean).sum())
    if total_x <= 0:
        return None
    ratio = float((sizes * y_mean).sum()) / total_x
    # Residuals d_u = y_u - R x_u: s_yh^2 + R^2 s_xh^2 - 2R s_xyh is the sample variance of d within h.
    d = y - ratio * x
    d_mean = np.bincount(strata, weights=d, minlength=len(sizes)) / np.maximum(n_h, 1)
    squares = np.bincount(strata, weights=(d - d_mean[strata]) ** 2, minlength=len(sizes))
    census = sampled >= sizes
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(census | (sampled < 2), 0.0, squares / np.maximum(n_h - 1, 1))
    variance = float((sizes.astype(np.float64) ** 2 * within / np.maximum(n_h, 1)).sum()) / total_x**2
    return Estimate(ratio, float(np.sqrt(max(variance, 0.0))))


def estimate(
    strata_pixels: Sequence[int] | np.ndarray,
    stratum_category: Sequence[int] | np.ndarray,
    unit_strata: np.ndarray,
    unit_reference: np.ndarray,
    *,
    categories: int,
) -> SampleEstimates:
    """Estimates from a stratified random sample.

    `strata_pixels[h]`: pixels of stratum h in the map (N_h); `stratum_category[h]`: the map's category of
    stratum h (h itself when the strata are the map's classes; a transition's later class when a change map's
    strata are reported by class); per sample unit u: its stratum `unit_strata[u]` and the analyst's
    `unit_reference[u]`, categories numbered 0..categories-1. Every stratum with pixels must hold at least two
    units (or all of its pixels): the caller says which does not.
    """
    sizes = np.asarray(strata_pixels, dtype=np.float64)
    category_of = np.asarray(stratum_category, dtype=np.int64)
    strata = np.asarray(unit_strata, dtype=np.int64)
    mapped = category_of[strata]
    reference = np.asarray(unit_reference, dtype=np.int64)
    sampled = np.bincount(strata, minlength=len(sizes))
    total = float(sizes.sum())
    ones = np.ones(len(strata), dtype=np.float64)

    def share(y: np.ndarray) -> Estimate:
        found = _ratio(y, ones, strata, sizes, sampled)
        assert found is not None  # every unit counts in the denominator
        return found

    mapped_pixels = np.bincount(category_of, weights=sizes, minlength=categories)
    counts = np.zeros((categories, categories), dtype=np.int64)
    np.add.at(counts, (mapped, reference), 1)
    proportions = np.zeros((categories, categories), dtype=np.float64)
    for i in range(categories):
        for j in range(categories):
            if counts[i, j]:
                proportions[i, j] = share(((mapped == i) & (reference == j)).astype(np.float64)).value
    rows = []
    for k in range(categories):
        hit = ((mapped == k) & (reference == k)).astype(np.float64)
        rows.append(
            CategoryEstimates(
                mapped_share=float(mapped_pixels[k]) / total,
                share=share((reference == k).astype(np.float64)),
                users=_ratio(hit, (mapped == k).astype(np.float64), strata, sizes, sampled),
                producers=_ratio(hit, (reference == k).astype(np.float64), strata, sizes, sampled),
                sample_count=int((mapped == k).sum()),
            )
        )
    overall = share((mapped == reference).astype(np.float64))
    return SampleEstimates(categories=tuple(rows), overall=overall, proportions=proportions, counts=counts)


def allocate(strata_pixels: Mapping[int, int], *, size: int, minimum: int) -> dict[int, int]:
    """Sample units per stratum: `minimum` each (all of a smaller stratum), the rest of `size` proportional to
    the strata's pixels (largest remainders), never more than a stratum holds.

    Olofsson et al. (2014, section 5.1.1) recommend this compromise: proportional allocation alone leaves a
    rare class a handful of units (its user's accuracy and area unusable), equal allocation wastes units on
    the large classes that set overall accuracy; a floor for the rare strata with the rest proportional
    serves both. When the floors alone exceed `size`, the sample is the floors.
    """
    sizes = {stratum: int(pixels) for stratum, pixels in strata_pixels.items() if pixels > 0}
    counts = {stratum: min(minimum, pixels) for stratum, pixels in sizes.items()}
    remaining = size - sum(counts.values())
    while remaining > 0:
        room = {stratum: sizes[stratum] - counts[stratum] for stratum in sizes if sizes[stratum] > counts[stratum]}
        if not room:
            break
        total = sum(sizes[stratum] for stratum in room)
        exact = {stratum: remaining * sizes[stratum] / total for stratum in room}
        extra = {stratum: min(int(exact[stratum]), room[stratum]) for stratum in room}
        leftover = remaining - sum(extra.values())
        by_remainder = sorted(room, key=lambda s: (-(exact[s] - int(exact[s])), s))
        for stratum in by_remainder:
            if leftover <= 0:
                break
            if extra[stratum] < room[stratum]:
                extra[stratum] += 1
                leftover -= 1
        for stratum, added in extra.items():
            counts[stratum] += added
        given = sum(extra.values())
        if given == 0:
            break
        remaining -= given
    return counts

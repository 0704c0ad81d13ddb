"""The seed's FEATURES: six bands plus NDVI, NDWI and NDBI, from one frame's reflectance, and which
observations are usable.

`feature_stack` is the definition in numpy. `observations` computes the same stack (bit for bit: the
same float32 operations in the same order) together with the validity mask in one numba pass: the numpy
form made five temporaries of the window's size and took about six times the interpolation's time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from deep_lulc.shared.sentinel2 import REFLECTANCE_BANDS
from deep_lulc.stages.features.interpolation import _row_weights

INDICES: tuple[str, ...] = ("NDVI", "NDWI", "NDBI")
CHANNELS: tuple[str, ...] = (*REFLECTANCE_BANDS, *INDICES)
_B = {band: i for i, band in enumerate(REFLECTANCE_BANDS)}
# (a, b) band pairs of the three normalized differences (a - b) / (a + b), in INDICES order.
_PAIRS = np.array(
    [
        (_B["B08"], _B["B04"]),  # NDVI: vegetation
        (_B["B03"], _B["B08"]),  # NDWI (McFeeters): open water
        (_B["B11"], _B["B08"]),  # NDBI: built-up
    ],
    dtype=np.int64,
)
SCL_CODES = 256  # SCL is uint8; a lookup table over every code tells valid classes in one load


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        total = a + b
        return np.where(total != 0, (a - b) / total, np.nan).astype(np.float32)


def feature_stack(reflectance: np.ndarray) -> np.ndarray:
    """(T, 6, Y, X) reflectance -> (T, 9, Y, X) float32: the bands, then NDVI, NDWI and NDBI."""
    bands = reflectance.astype(np.float32, copy=False)
    indices = np.stack([_normalized_difference(bands[:, a], bands[:, b]) for a, b in _PAIRS], axis=1)
    return np.concatenate([bands, indices], axis=1)


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _observe_rows(  # pragma: no cover - compiled; exercised through observations
    reflectance: npt.NDArray[np.float32],
    scl: npt.NDArray[np.uint8],
    valid_code: npt.NDArray[np.bool_],
    pairs: npt.NDArray[np.int64],
    stack: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
) -> None:
    """Rows (t, y) are independent and the parallel axis; each inner loop runs along a contiguous x row.

    fastmath stays off: NaN is an input (no data) and an output (a zero denominator), and float32
    arithmetic in numpy's order keeps the result identical to `feature_stack`. nogil lets the stage read
    the next window and write the previous one while this runs.
    """
    n_t, n_b, n_y, n_x = reflectance.shape
    n_i = pairs.shape[0]
    for row in prange(n_t * n_y):
        t = row // n_y
        y = row % n_y
        for x in range(n_x):
            valid[t, y, x] = valid_code[scl[t, y, x]]
        for b in range(n_b):
            for x in range(n_x):
                value = reflectance[t, b, y, x]
                stack[t, b, y, x] = value
                if not np.isfinite(value):
                    valid[t, y, x] = False
        for i in range(n_i):
            first = pairs[i, 0]
            second = pairs[i, 1]
            for x in range(n_x):
                a = reflectance[t, first, y, x]
                b = reflectance[t, second, y, x]
                total = a + b
                index = (a - b) / total if total != 0 else np.float32(np.nan)
                stack[t, n_b + i, y, x] = index
                if not np.isfinite(index):
                    valid[t, y, x] = False


def _check(reflectance: npt.NDArray[np.float32], scl: npt.NDArray[np.uint8]) -> None:
    if reflectance.dtype != np.float32 or reflectance.ndim != 4 or reflectance.shape[1] != len(REFLECTANCE_BANDS):
        raise ValueError(f"reflectance must be (T, 6, Y, X) float32, got {reflectance.shape} {reflectance.dtype}")
    n_t, _, n_y, n_x = reflectance.shape
    if scl.dtype != np.uint8 or scl.shape != (n_t, n_y, n_x):
        raise ValueError(f"scl must be (T, Y, X) = {(n_t, n_y, n_x)} uint8, got {scl.shape} {scl.dtype}")


def observations(
    reflectance: npt.NDArray[np.float32], scl: npt.NDArray[np.uint8], classes: Sequence[int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """`feature_stack(reflectance)` and the usable observations: (T, 9, Y, X) float32 and (T, Y, X) bool.

    An observation is usable when its SCL class is one of `classes`, every band is finite and every index
    is finite (a zero denominator makes an index NaN): each pixel on its own, whatever its neighbours or
    the rest of the frame hold.
    """
    _check(reflectance, scl)
    n_t, _, n_y, n_x = reflectance.shape
    valid_code = np.zeros(SCL_CODES, dtype=np.bool_)
    valid_code[list(classes)] = True
    stack = np.empty((n_t, len(CHANNELS), n_y, n_x), dtype=np.float32)
    valid = np.empty((n_t, n_y, n_x), dtype=np.bool_)
    if stack.size:
        _observe_rows(np.ascontiguousarray(reflectance), np.ascontiguousarray(scl), valid_code, _PAIRS, stack, valid)
    return stack, valid


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _usable_rows(  # pragma: no cover - compiled; exercised through usable_observations
    reflectance: npt.NDArray[np.float32],
    scl: npt.NDArray[np.uint8],
    valid_code: npt.NDArray[np.bool_],
    pairs: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
) -> None:
    """`_observe_rows`' mask alone: the same tests on the same float32 values, no stack written."""
    n_t, n_b, n_y, n_x = reflectance.shape
    n_i = pairs.shape[0]
    for row in prange(n_t * n_y):
        t = row // n_y
        y = row % n_y
        for x in range(n_x):
            valid[t, y, x] = valid_code[scl[t, y, x]]
        for b in range(n_b):
            for x in range(n_x):
                if not np.isfinite(reflectance[t, b, y, x]):
                    valid[t, y, x] = False
        for i in range(n_i):
            first = pairs[i, 0]
            second = pairs[i, 1]
            for x in range(n_x):
                a = reflectance[t, first, y, x]
                b = reflectance[t, second, y, x]
                total = a + b
                index = (a - b) / total if total != 0 else np.float32(np.nan)
                if not np.isfinite(index):
                    valid[t, y, x] = False


def usable_observations(
    reflectance: npt.NDArray[np.float32], scl: npt.NDArray[np.uint8], classes: Sequence[int]
) -> npt.NDArray[np.bool_]:
    """The mask of `observations` without its stack: (T, Y, X) bool."""
    _check(reflectance, scl)
    valid_code = np.zeros(SCL_CODES, dtype=np.bool_)
    valid_code[list(classes)] = True
    valid = np.empty(scl.shape, dtype=np.bool_)
    if valid.size:
        _usable_rows(np.ascontiguousarray(reflectance), np.ascontiguousarray(scl), valid_code, _PAIRS, valid)
    return valid


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _interpolate_feature_rows(  # pragma: no cover - compiled; exercised through interpolated_features
    reflectance: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    pairs: npt.NDArray[np.int64],
    source_days: npt.NDArray[np.float64],
    target_days: npt.NDArray[np.float64],
    targets_reached: npt.NDArray[np.int64],
    out: npt.NDArray[np.float32],
) -> None:
    """`_interpolate_rows` over the nine channels, the three indices computed from the two bracketing
    frames' bands where they are needed, with `_observe_rows`' float32 operations, so the result is the
    same bit for bit without a (T, 9, Y, X) stack ever being stored."""
    _, n_b, n_y, n_x = reflectance.shape
    n_i = pairs.shape[0]
    n_d = target_days.shape[0]
    for y in prange(n_y):
        lower = np.empty((n_d, n_x), dtype=np.int64)
        upper = np.empty((n_d, n_x), dtype=np.int64)
        weight = np.empty((n_d, n_x), dtype=np.float64)
        _row_weights(valid, y, source_days, target_days, targets_reached, lower, upper, weight)
        for k in range(n_d):
            for c in range(n_b):
                for x in range(n_x):
                    w = weight[k, x]
                    a = reflectance[lower[k, x], c, y, x]
                    if w == 0.0:
                        out[k, c, y, x] = a
                    else:
                        b = reflectance[upper[k, x], c, y, x]
                        out[k, c, y, x] = np.float32(np.float64(a) + w * (np.float64(b) - np.float64(a)))
            for i in range(n_i):
                first = pairs[i, 0]
                second = pairs[i, 1]
                for x in range(n_x):
                    w = weight[k, x]
                    t = lower[k, x]
                    p = reflectance[t, first, y, x]
                    q = reflectance[t, second, y, x]
                    total = p + q
                    a = (p - q) / total if total != 0 else np.float32(np.nan)
                    if w == 0.0:
                        out[k, n_b + i, y, x] = a
                    else:
                        t = upper[k, x]
                        p = reflectance[t, first, y, x]
                        q = reflectance[t, second, y, x]
                        total = p + q
                        b = (p - q) / total if total != 0 else np.float32(np.nan)
                        out[k, n_b + i, y, x] = np.float32(np.float64(a) + w * (np.float64(b) - np.float64(a)))


def interpolated_features(
    reflectance: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    source_days: npt.NDArray[np.float64],
    target_days: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    """`interpolate_to_grid(observations(...)[0], valid, ...)`, equal bit for bit, in one pass that reads the
    six bands only: the nine-channel stack of every frame (the stage's largest array) is never made."""
    if reflectance.dtype != np.float32 or reflectance.ndim != 4 or reflectance.shape[1] != len(REFLECTANCE_BANDS):
        raise ValueError(f"reflectance must be (T, 6, Y, X) float32, got {reflectance.shape} {reflectance.dtype}")
    n_t, _, n_y, n_x = reflectance.shape
    if valid.dtype != np.bool_ or valid.shape != (n_t, n_y, n_x):
        raise ValueError(f"valid must be (T, Y, X) = {(n_t, n_y, n_x)} bool, got {valid.shape} {valid.dtype}")
    sources = np.ascontiguousarray(source_days, dtype=np.float64)
    targets = np.ascontiguousarray(target_days, dtype=np.float64)
    if sources.shape != (n_t,) or np.any(np.diff(sources) <= 0) or np.any(np.diff(targets) < 0):
        raise ValueError("source_days must be strictly increasing, one per frame; target_days sorted")
    out = np.empty((targets.shape[0], len(CHANNELS), n_y, n_x), dtype=np.float32)
    if out.size == 0:
        return out
    if n_t == 0:
        out.fill(np.nan)
        return out
    reached = np.searchsorted(targets, sources, side="right").astype(np.int64)
    _interpolate_feature_rows(
        np.ascontiguousarray(reflectance), np.ascontiguousarray(valid), _PAIRS, sources, targets, reached, out
    )
    return out

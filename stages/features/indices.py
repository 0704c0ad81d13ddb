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


def observations(
    reflectance: npt.NDArray[np.float32], scl: npt.NDArray[np.uint8], classes: Sequence[int]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """`feature_stack(reflectance)` and the usable observations: (T, 9, Y, X) float32 and (T, Y, X) bool.

    An observation is usable when its SCL class is one of `classes`, every band is finite and every index
    is finite (a zero denominator makes an index NaN): each pixel on its own, whatever its neighbours or
    the rest of the frame hold.
    """
    if reflectance.dtype != np.float32 or reflectance.ndim != 4 or reflectance.shape[1] != len(REFLECTANCE_BANDS):
        raise ValueError(f"reflectance must be (T, 6, Y, X) float32, got {reflectance.shape} {reflectance.dtype}")
    n_t, _, n_y, n_x = reflectance.shape
    if scl.dtype != np.uint8 or scl.shape != (n_t, n_y, n_x):
        raise ValueError(f"scl must be (T, Y, X) = {(n_t, n_y, n_x)} uint8, got {scl.shape} {scl.dtype}")
    valid_code = np.zeros(SCL_CODES, dtype=np.bool_)
    valid_code[list(classes)] = True
    stack = np.empty((n_t, len(CHANNELS), n_y, n_x), dtype=np.float32)
    valid = np.empty((n_t, n_y, n_x), dtype=np.bool_)
    if stack.size:
        _observe_rows(np.ascontiguousarray(reflectance), np.ascontiguousarray(scl), valid_code, _PAIRS, stack, valid)
    return stack, valid

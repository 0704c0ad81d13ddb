"""The seed's FEATURES: six bands plus NDVI, NDWI and NDBI, from one frame's reflectance, and which
observations are usable.

`feature_stack` is the definition in numpy. The stage never builds it: `usable_observations` tests each
observation in one numba pass, and `interpolated_features` computes the indices inside the interpolation,
at the two frames each date blends, with the same float32 operations (bit for bit the same result).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from numba import njit, prange

from deep_lulc.shared.sources.sentinel2 import REFLECTANCE_BANDS
from deep_lulc.stages.features.interpolation import interpolate_to_grid

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
    valid = usable_observations(reflectance, scl, classes)
    return feature_stack(reflectance), valid


@njit(parallel=True, cache=True, fastmath=False, nogil=True)
def _usable_rows(  # pragma: no cover - compiled; exercised through usable_observations
    reflectance: npt.NDArray[np.float32],
    scl: npt.NDArray[np.uint8],
    valid_code: npt.NDArray[np.bool_],
    pairs: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
) -> None:
    """Rows (t, y) are independent and the parallel axis; each inner loop runs along a contiguous x row.

    The indices are tested in float32 as `feature_stack` computes them, without storing them. fastmath stays
    off: NaN is an input (no data) and an output (a zero denominator). nogil lets the stage read the next
    window and write the previous one while this runs.
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
    """Which observations are usable (see `observations`), without the stack: (T, Y, X) bool."""
    _check(reflectance, scl)
    valid_code = np.zeros(SCL_CODES, dtype=np.bool_)
    valid_code[list(classes)] = True
    valid = np.empty(scl.shape, dtype=np.bool_)
    if valid.size:
        _usable_rows(np.ascontiguousarray(reflectance), np.ascontiguousarray(scl), valid_code, _PAIRS, valid)
    return valid


def interpolated_features(
    reflectance: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    source_days: npt.NDArray[np.float64],
    target_days: npt.NDArray[np.float64],
) -> npt.NDArray[np.float32]:
    """`interpolate_to_grid(feature_stack(reflectance), valid, ...)`, equal bit for bit, reading the six
    bands only: the indices are computed at the frames each date blends, so the nine-channel stack of
    every frame (the stage's largest array) is never made."""
    if reflectance.shape[1:2] != (len(REFLECTANCE_BANDS),):
        raise ValueError(f"reflectance must be (T, 6, Y, X), got {reflectance.shape}")
    return interpolate_to_grid(reflectance, valid, source_days, target_days, normalized_differences=_PAIRS)

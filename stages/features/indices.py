"""The seed's FEATURES: six bands plus NDVI, NDWI and NDBI, from one frame's reflectance."""

from __future__ import annotations

import numpy as np

from deep_lulc.shared.sentinel2 import REFLECTANCE_BANDS

INDICES: tuple[str, ...] = ("NDVI", "NDWI", "NDBI")
CHANNELS: tuple[str, ...] = (*REFLECTANCE_BANDS, *INDICES)
_B = {band: i for i, band in enumerate(REFLECTANCE_BANDS)}


def _normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        total = a + b
        return np.where(total != 0, (a - b) / total, np.nan).astype(np.float32)


def feature_stack(reflectance: np.ndarray) -> np.ndarray:
    """(T, 6, Y, X) reflectance -> (T, 9, Y, X) float32: the bands, then NDVI, NDWI and NDBI."""
    bands = reflectance.astype(np.float32, copy=False)
    nir, red, green, swir = (bands[:, _B[b]] for b in ("B08", "B04", "B03", "B11"))
    indices = np.stack(
        [
            _normalized_difference(nir, red),  # NDVI: vegetation
            _normalized_difference(green, nir),  # NDWI (McFeeters): open water
            _normalized_difference(swir, nir),  # NDBI: built-up
        ],
        axis=1,
    )
    return np.concatenate([bands, indices], axis=1)

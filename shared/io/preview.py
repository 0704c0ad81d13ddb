"""Small PNG previews for STAC browsers (role `thumbnail`): true colour, transparent where no data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac
from PIL import Image

PNG_MEDIA_TYPE = "image/png"


def thumbnail_asset(path: Path, *, title: str) -> pystac.Asset:
    """A preview PNG as STAC browsers look for it (role `thumbnail`)."""
    return pystac.Asset(str(path), title=title, media_type=PNG_MEDIA_TYPE, roles=["thumbnail"])


PREVIEW_SIDE = 512


def preview_stride(height: int, width: int, *, max_side: int = PREVIEW_SIDE) -> int:
    """Every how many pixels a preview samples the grid: twice the PNG's resolution is plenty for its
    bilinear thumbnail, and a stage never holds a full-resolution true-colour copy of a large AOI."""
    return max(1, max(height, width) // (2 * max_side))


def true_colour_png(
    red: np.ndarray, green: np.ndarray, blue: np.ndarray, path: Path, *, max_side: int = PREVIEW_SIDE
) -> Path:
    """Reflectance 0..0.3 stretched with a gamma of 1/1.6, the usual look of Sentinel-2 quicklooks."""
    rgb = np.stack([red, green, blue], axis=-1).astype(np.float32)
    valid = np.isfinite(rgb).all(axis=-1)
    scaled = np.clip(np.nan_to_num(rgb, nan=0.0) / 0.3, 0.0, 1.0) ** (1 / 1.6)
    alpha = np.where(valid, 255, 0).astype(np.uint8)
    rgba = np.concatenate([(scaled * 255).astype(np.uint8), alpha[..., None]], axis=-1)
    image = Image.fromarray(rgba, mode="RGBA")
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
    return path

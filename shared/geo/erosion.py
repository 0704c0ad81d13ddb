"""Per-class erosion of a label raster with a true disk.

Erosion removes 1-px slivers of rasterisation and opens a no-label gap along the border between two
classes, where mixed pixels would teach the model noise. eo-learn's ErosionTask builds its kernel as an
ellipse of size (r, r), so its `disk_radius=1` is a 1x1 kernel that erodes nothing; here radius 1 is the
3x3 cross (every pixel within Euclidean distance 1), so a 1-px line vanishes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def disk(radius: int) -> np.ndarray:
    """Pixels within Euclidean distance `radius` of the centre."""
    offsets = np.arange(-radius, radius + 1)
    return np.asarray(offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2)


def erode_labels(labels: np.ndarray, radius: int, *, nodata: int = 0) -> np.ndarray:
    """Each class eroded on its own; eroded pixels become `nodata`. The raster's edge is not a border."""
    if radius <= 0:
        return labels.copy()
    footprint = disk(radius)
    eroded = np.full_like(labels, nodata)
    for value in np.unique(labels):
        if value == nodata:
            continue
        core = ndimage.binary_erosion(labels == value, structure=footprint, border_value=1)
        eroded[core] = value
    return eroded

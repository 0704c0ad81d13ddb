"""Window-by-window passes over a cube store, so features for an AOI larger than memory go through.

Each window holds every frame of a spatial block; the peak memory is set by the block size, not by the
AOI. Windows run one after the other in-process (the interpolation kernel already uses every core), or
as tasks on an existing dask cluster whose workers can read the cube and write the output store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import xarray as xr

from deep_lulc.shared.products.features import write_window
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.progress import progress
from deep_lulc.shared.windows import PixelWindow
from deep_lulc.stages.features.indices import feature_stack
from deep_lulc.stages.features.interpolation import interpolate_to_grid

T = TypeVar("T")
R = TypeVar("R")


def read_window(
    cube: xr.Dataset, window: PixelWindow, frames: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reflectance (T, 6, y, x) and SCL (T, y, x) of a window, optionally for some frames only."""
    selection: dict[str, Any] = dict(window.region)
    if frames is not None:
        selection["time"] = list(frames)
    reflectance = np.asarray(cube["reflectance"].isel(selection).values, dtype=np.float32)
    scl = np.asarray(cube["scl"].isel(selection).values)
    return reflectance, scl


def usable(reflectance: np.ndarray, scl: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Valid SCL class and every band present (the features stage's definition of an observation)."""
    return np.asarray(np.isin(scl, list(classes)) & np.isfinite(reflectance).all(axis=1))


@dataclass(frozen=True)
class CountJob:
    cube: ZarrLocation
    window: PixelWindow
    inside: np.ndarray  # AOI mask of the window
    classes: tuple[int, ...]


def count_valid(job: CountJob) -> np.ndarray:
    """Valid observations inside the AOI per frame, for one window."""
    reflectance, scl = read_window(job.cube.open(), job.window)
    valid = usable(reflectance, scl, job.classes)
    return np.asarray((valid & job.inside[None]).sum(axis=(1, 2)), dtype=np.int64)


@dataclass(frozen=True)
class FeatureJob:
    cube: ZarrLocation
    output: ZarrLocation
    window: PixelWindow
    frames: tuple[int, ...]
    classes: tuple[int, ...]
    source_days: np.ndarray
    target_days: np.ndarray


def compute_window(job: FeatureJob) -> int:
    """Features of one window, written into its region of the output store; returns its pixel count."""
    reflectance, scl = read_window(job.cube.open(), job.window, job.frames)
    stack = feature_stack(reflectance)
    valid = usable(reflectance, scl, job.classes) & np.isfinite(stack).all(axis=1)
    features = interpolate_to_grid(stack, valid, job.source_days, job.target_days)
    write_window(job.output, job.window.region, features=features, valid_count=valid.sum(axis=0))
    return job.window.height * job.window.width


def run_all(function: Callable[[T], R], jobs: Sequence[T], *, address: str | None) -> list[R]:
    """In order, in-process; or as tasks on the dask cluster at `address`."""
    if address is None:
        return [function(job) for job in progress(jobs, total=len(jobs), what="windows", unit="window")]
    from distributed import Client

    with Client(address, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(function, jobs, pure=False)
        results: list[R] = client.gather(futures)
        return results

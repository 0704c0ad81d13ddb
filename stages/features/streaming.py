"""Window-by-window passes over a cube store, so features for an AOI larger than memory go through.

Each window holds every frame of a spatial block; the peak memory is set by the block size, not by the
AOI. Windows run one after the other in-process (the interpolation kernel already uses every core), or
as tasks on an existing dask cluster whose workers can read the cube and write the output store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
import xarray as xr

from deep_lulc.shared import storage
from deep_lulc.shared.progress import progress
from deep_lulc.stages.features.indices import feature_stack
from deep_lulc.stages.features.interpolation import interpolate_to_grid

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Window:
    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def region(self) -> dict[str, slice]:
        return {"y": slice(self.y0, self.y1), "x": slice(self.x0, self.x1)}


def windows(height: int, width: int, block: int) -> list[Window]:
    """Blocks aligned on multiples of `block`, matching the output store's chunks (safe parallel writes)."""
    return [
        Window(y, min(y + block, height), x, min(x + block, width))
        for y in range(0, height, block)
        for x in range(0, width, block)
    ]


@dataclass(frozen=True)
class ZarrStore:
    """A Zarr href plus what it takes to open it; picklable, so dask workers can open it too."""

    href: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def at(href: str) -> ZarrStore:
        if storage.scheme_of(href) == "s3":
            return ZarrStore(href, storage.s3_storage_options())
        return ZarrStore(storage.normalize_href(href))

    def open(self) -> xr.Dataset:
        dataset: xr.Dataset = xr.open_zarr(self.href, consolidated=True, storage_options=self.storage_options or None)
        return dataset


def read_window(cube: xr.Dataset, window: Window, frames: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    cube: ZarrStore
    window: Window
    inside: np.ndarray  # AOI mask of the window
    classes: tuple[int, ...]


def count_valid(job: CountJob) -> np.ndarray:
    """Valid observations inside the AOI per frame, for one window."""
    reflectance, scl = read_window(job.cube.open(), job.window)
    valid = usable(reflectance, scl, job.classes)
    return np.asarray((valid & job.inside[None]).sum(axis=(1, 2)), dtype=np.int64)


@dataclass(frozen=True)
class FeatureJob:
    cube: ZarrStore
    output: ZarrStore
    window: Window
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
    block = xr.Dataset(
        {
            "features": (("time", "channel", "y", "x"), features),
            "valid_count": (("y", "x"), valid.sum(axis=0).astype(np.int16)),
        }
    )
    # xarray annotates storage_options as dict[str, str]; s3 options nest a client_kwargs dict.
    options = cast(dict[str, str], job.output.storage_options) if job.output.storage_options else None
    block.to_zarr(job.output.href, region=job.window.region, zarr_format=2, storage_options=options)
    return int((job.window.y1 - job.window.y0) * (job.window.x1 - job.window.x0))


def run_all(function: Callable[[T], R], jobs: Sequence[T], *, address: str | None) -> list[R]:
    """In order, in-process; or as tasks on the dask cluster at `address`."""
    if address is None:
        return [function(job) for job in progress(jobs, total=len(jobs), what="windows", unit="window")]
    from distributed import Client

    with Client(address, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(function, jobs, pure=False)
        results: list[R] = client.gather(futures)
        return results

"""Window-by-window passes over a cube store, so features for an AOI larger than memory go through.

Each window holds every frame of a spatial block; the peak memory is set by the block size, not by the
AOI. In-process, windows go through a three-step pipeline: a reader thread fetches window i + 1 and a
writer thread encodes window i - 1 while the main thread computes window i (Zarr decoding and encoding
and both numba kernels release the GIL, so the steps overlap on separate cores; at most three windows are
in memory). On an existing dask cluster each window is one task that reads, computes and writes.
Either way every window is computed by the same code from the same chunks, so results are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import xarray as xr

from deep_lulc.shared.geo.windows import PixelWindow
from deep_lulc.shared.products.features import write_window
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.stage.progress import progress
from deep_lulc.stages.features.dates import DateGrid
from deep_lulc.stages.features.indices import CHANNELS, interpolated_features, usable_observations

T = TypeVar("T")
R = TypeVar("R")
Counts = npt.NDArray[np.int64]


def read_window(cube: xr.Dataset, window: PixelWindow) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Reflectance (T, 6, y, x) float32 and SCL (T, y, x) uint8 of a window, every frame.

    Plain slices of the non-dask variables: Zarr decodes exactly the chunks the window touches, straight
    into one numpy array (the earlier dask `isel` with a list of frames built a graph per window and
    copied every chunk twice).
    """
    rows, cols = window.slices
    reflectance = np.asarray(cube["reflectance"].variable[:, :, rows, cols].values, dtype=np.float32)
    scl = np.asarray(cube["scl"].variable[:, rows, cols].values, dtype=np.uint8)
    return reflectance, scl


@dataclass(frozen=True)
class CountJob:
    cube: ZarrLocation
    window: PixelWindow
    inside: np.ndarray  # AOI mask of the window
    classes: tuple[int, ...]


def count_valid(job: CountJob) -> Counts:
    """Usable observations inside the AOI per frame, for one window (`--frame-filter aoi`'s first pass)."""
    reflectance, scl = read_window(job.cube.open(lazy=False), job.window)
    valid = usable_observations(reflectance, scl, job.classes)
    return np.asarray((valid & job.inside[None]).sum(axis=(1, 2)), dtype=np.int64)


@dataclass(frozen=True)
class FeatureJob:
    cube: ZarrLocation
    output: ZarrLocation
    window: PixelWindow
    frames: tuple[int, ...] | None  # the frames to use (None: every frame, the per-pixel rule)
    classes: tuple[int, ...]
    source_days: np.ndarray  # days of the frames used
    target_days: np.ndarray
    inside: np.ndarray  # AOI mask of the window, for the per-frame counts
    preview_date: int  # target date of the true-colour preview
    preview_channels: tuple[int, int, int]  # red, green, blue
    preview_stride: int = 1  # the preview samples every n-th row and column of the whole grid


def feature_jobs(
    cube: ZarrLocation,
    output: ZarrLocation,
    windows: Sequence[PixelWindow],
    frames: tuple[int, ...] | None,
    classes: tuple[int, ...],
    dates: DateGrid,
    inside: np.ndarray,
    preview_stride: int,
) -> list[FeatureJob]:
    """One job per window, each with its part of the AOI mask, reading `frames` (None: every frame) and
    sampling the true-colour preview at the middle date."""
    red, green, blue = (CHANNELS.index(band) for band in ("B04", "B03", "B02"))
    return [
        FeatureJob(
            cube,
            output,
            w,
            frames,
            classes,
            dates.source_days,
            dates.target_days,
            inside[w.slices],
            dates.middle,
            (red, green, blue),
            preview_stride,
        )
        for w in windows
    ]


@dataclass(frozen=True)
class WindowSummary:
    """What the stage reports of a window, so it never reads the written store back (its chunks hold every
    date, so one date's preview would decode all of them)."""

    counts: Counts  # usable observations inside the AOI per frame used
    never_valid: int  # AOI pixels without a single usable observation
    preview: npt.NDArray[np.float32]  # (3, y, x) red, green, blue at the preview date, every stride-th pixel


@dataclass(frozen=True)
class WindowFeatures:
    features: npt.NDArray[np.float32]  # (D, 9, y, x)
    valid_count: npt.NDArray[np.int32]  # (y, x)
    summary: WindowSummary


def load(job: FeatureJob) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    return read_window(job.cube.open(lazy=False), job.window)


def compute(job: FeatureJob, loaded: tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]) -> WindowFeatures:
    reflectance, scl = loaded
    if job.frames is not None:
        reflectance, scl = reflectance[list(job.frames)], scl[list(job.frames)]
    valid = usable_observations(reflectance, scl, job.classes)
    features = interpolated_features(reflectance, valid, job.source_days, job.target_days)
    del reflectance, scl
    counts = np.asarray((valid & job.inside[None]).sum(axis=(1, 2)), dtype=np.int64)
    valid_count = valid.sum(axis=0, dtype=np.int32)
    summary = WindowSummary(
        counts,
        int(((valid_count == 0) & job.inside).sum()),
        preview_sample(features[job.preview_date, list(job.preview_channels)], job.window, job.preview_stride),
    )
    return WindowFeatures(features, valid_count, summary)


def preview_sample(rgb: npt.NDArray[np.float32], window: PixelWindow, stride: int) -> npt.NDArray[np.float32]:
    """The window's pixels on the whole grid's every-stride-th rows and columns, so the pieces tile."""
    first_row, first_col = -window.row % stride, -window.col % stride
    return rgb[:, first_row::stride, first_col::stride].copy()


def assemble_preview(
    windows: Sequence[PixelWindow], pieces: Sequence[npt.NDArray[np.float32]], shape: tuple[int, int], stride: int
) -> npt.NDArray[np.float32]:
    """The whole grid's preview, every stride-th pixel, from the windows' samples."""
    height, width = shape
    rgb = np.empty((3, -(-height // stride), -(-width // stride)), dtype=np.float32)
    for window, piece in zip(windows, pieces, strict=True):
        row, col = -(-window.row // stride), -(-window.col // stride)
        rgb[:, row : row + piece.shape[1], col : col + piece.shape[2]] = piece
    return rgb


def store(job: FeatureJob, result: WindowFeatures) -> WindowSummary:
    write_window(job.output, job.window.region, features=result.features, valid_count=result.valid_count)
    return result.summary


def compute_window(job: FeatureJob) -> WindowSummary:
    """Features of one window, written into its region of the output store (a dask task: read, compute
    and write in one)."""
    return store(job, compute(job, load(job)))


def run_windows(jobs: Sequence[FeatureJob], *, address: str | None) -> list[WindowSummary]:
    """Every window's features written, and each window's summary, in the order of `jobs`."""
    if address is not None or len(jobs) < 2:
        return run_all(compute_window, jobs, address=address)
    results: list[WindowSummary] = []
    with (
        ThreadPoolExecutor(1, thread_name_prefix="features-read") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="features-write") as writer,
    ):
        reading = reader.submit(load, jobs[0])
        writing: Future[WindowSummary] | None = None
        for index, job in enumerate(progress(jobs, total=len(jobs), what="windows", unit="window")):
            loaded = reading.result()
            if index + 1 < len(jobs):
                reading = reader.submit(load, jobs[index + 1])
            computed = compute(job, loaded)
            del loaded
            if writing is not None:
                results.append(writing.result())  # one write in flight: memory stays at three windows
            writing = writer.submit(store, job, computed)
            del computed
        assert writing is not None
        results.append(writing.result())
    return results


def run_all(function: Callable[[T], R], jobs: Sequence[T], *, address: str | None) -> list[R]:
    """In order, in-process; or as tasks on the dask cluster at `address`."""
    if address is None:
        return [function(job) for job in progress(jobs, total=len(jobs), what="windows", unit="window")]
    from distributed import Client

    with Client(address, timeout="30s") as client:  # type: ignore[no-untyped-call]
        futures = client.map(function, jobs, pure=False)
        results: list[R] = client.gather(futures)
        return results

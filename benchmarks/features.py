"""How fast the `features` stage's temporal interpolation runs, against one plain numpy pass and eo-learn
(measured in the same run, when it is installed).

Run: .venv/bin/python -m benchmarks.features [--peer-python /tmp/eol/bin/python]

The cube is a year of Sentinel-2 at 60 frames (about every 6 days), 500 x 500 pixels, 9 bands, stored
(T, C, Y, X) float32 as the stage holds it, with about 30 % of pixels cloudy in blobs (NaN, as a masked
read gives them). It is resampled to 23 dates on a 16-day step. The peer, eo-learn 1.5.7's
`LinearInterpolationTask`, is timed in the same run on an EOPatch of the same cube, in a child process of
`--peer-python` (default: this interpreter), so eo-learn can live in a venv of its own: the `bench` extra
(`pip install .[bench]`) or `python3.11 -m venv /tmp/eol && /tmp/eol/bin/pip install eo-learn==1.5.7 scipy
scikit-learn`. Without eo-learn there the comparison is skipped and no speed-up is claimed.

Then the whole stage, Zarr cube in and Zarr features out, on 500 and 1000 px cubes of 60 frames, beside
one plain read of the same cube (every chunk once, with zarr, no compute): the stage reads each chunk
once, so the ratio stage / plain read says what the computing and writing add to the reading. The
target is 15 Mpx x frames/s end to end at 1000 px on 2 cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba.np.ufunc import get_num_threads, threading_layer
from scipy import ndimage

from deep_lulc.stages.features.interpolation import _interpolate_rows, interpolate_to_grid

FRAMES, BANDS, SIZE = 60, 9, 500
TARGET_DATES, TARGET_STEP_DAYS = 23, 16.0
CLOUD_FRACTION = 0.30
PEER_REPEATS = 2  # eo-learn takes seconds a run
REPEATS = 5


@dataclass(frozen=True)
class Cube:
    values: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    source_days: npt.NDArray[np.float64]
    target_days: npt.NDArray[np.float64]


def make_cube(seed: int = 0) -> Cube:
    """Random reflectances under blob-shaped clouds; each frame's cloud cover varies around 30 %."""
    rng = np.random.default_rng(seed)
    values = rng.random((FRAMES, BANDS, SIZE, SIZE), dtype=np.float32)
    noise = rng.standard_normal((FRAMES, SIZE // 4, SIZE // 4)).astype(np.float32)
    smooth = ndimage.zoom(ndimage.gaussian_filter(noise, sigma=(0, 3, 3)), (1, 4, 4), order=1)
    cover = rng.uniform(0.0, 2 * CLOUD_FRACTION, FRAMES)
    thresholds = np.array([np.quantile(frame, c) for frame, c in zip(smooth, cover, strict=True)])
    valid = smooth >= thresholds[:, None, None]
    values[~np.broadcast_to(valid[:, None], values.shape)] = np.nan
    source_days = np.cumsum(rng.integers(5, 8, FRAMES)).astype(np.float64)
    target_days = source_days[0] + TARGET_STEP_DAYS * np.arange(TARGET_DATES, dtype=np.float64)
    return Cube(values, valid, source_days, target_days)


def warm_up() -> tuple[float, str]:
    """Seconds of the first call on a tiny cube, kept out of the timed runs, and where the code came from.

    The first call in a process either compiles the kernel (a few seconds) or loads it from numba's
    on-disk cache; either way it is a per-process cost, not a per-cube one.
    """
    started = time.perf_counter()
    tiny = np.ones((3, 2, 4, 4), dtype=np.float32)
    interpolate_to_grid(tiny, np.ones((3, 4, 4), dtype=bool), np.arange(3.0), np.arange(2.0))
    seconds = time.perf_counter() - started
    stats = _interpolate_rows.stats
    source = "loaded from cache" if sum(stats.cache_hits.values()) else "compiled"
    return seconds, f"{source}, cache folder {stats.cache_path}"


def best_seconds(action: Callable[[], object], repeats: int = REPEATS) -> float:
    """Best of N: the machine is shared, so the minimum is the figure least disturbed by other work."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def spot_check(cube: Cube, result: npt.NDArray[np.float32], pixels: int = 200) -> None:
    """Compare random pixels with np.interp, so a fast but wrong kernel cannot produce a figure."""
    rng = np.random.default_rng(1)
    for y, x in zip(rng.integers(0, SIZE, pixels), rng.integers(0, SIZE, pixels), strict=True):
        ok = cube.valid[:, y, x]
        for c in range(BANDS):
            expected = np.interp(cube.target_days, cube.source_days[ok], cube.values[ok, c, y, x].astype(np.float64))
            np.testing.assert_allclose(result[:, c, y, x], expected, rtol=1e-6, err_msg=f"pixel {(y, x)} band {c}")


def bench_interpolation(cube: Cube) -> dict[str, float]:
    """Best-of-N seconds of `interpolate_to_grid` and of two numpy passes over the same array.

    `values * 1.0` reads the cube and writes a new array of the same size, as the kernel writes its
    (smaller) output into a fresh array; `np.nansum` is numpy's own NaN-aware pass (it copies the cube to
    zero the NaN, then sums).
    """
    spot_check(cube, interpolate_to_grid(cube.values, cube.valid, cube.source_days, cube.target_days))
    interpolate = best_seconds(lambda: interpolate_to_grid(cube.values, cube.valid, cube.source_days, cube.target_days))
    copy = best_seconds(lambda: cube.values * np.float32(1.0))
    nansum = best_seconds(lambda: np.nansum(cube.values))
    return {"interpolate": interpolate, "numpy_multiply": copy, "numpy_nansum": nansum}


# The peer in its own interpreter (eo-learn may live in another venv): reads the cube from .npy files,
# times LinearInterpolationTask on an EOPatch of it (T, Y, X, C, NaN where cloudy, as a masked read gives
# them) and saves its output for the parent to compare with the kernel's.
_PEER_CHILD = """
import datetime as dt, json, sys, time, warnings
import numpy as np
try:
    import eolearn
    from eolearn.core import EOPatch, FeatureType
    from eolearn.features.extra.interpolation import LinearInterpolationTask
    from sentinelhub import CRS, BBox
except ImportError as exc:
    print(json.dumps({"missing": str(exc)}))
    sys.exit(0)
folder, repeats = sys.argv[1], int(sys.argv[2])
values = np.load(folder + "/values.npy")
source_days, target_days = np.load(folder + "/source_days.npy"), np.load(folder + "/target_days.npy")
base = dt.datetime(2023, 1, 1)
timestamps = [base + dt.timedelta(days=float(d)) for d in source_days]
targets = [base + dt.timedelta(days=float(d)) for d in target_days]
height, width = values.shape[-2:]
task = LinearInterpolationTask((FeatureType.DATA, "FEATURES"), resample_range=targets)
times, result = [], None
for _ in range(repeats):
    patch = EOPatch(bbox=BBox((500000, 5000000, 500000 + 10 * width, 5000000 + 10 * height), CRS(32633)),
                    timestamps=timestamps)
    patch.data["FEATURES"] = np.ascontiguousarray(values.transpose(0, 2, 3, 1))
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = task.execute(patch)
    times.append(time.perf_counter() - started)
np.save(folder + "/result.npy", result.data["FEATURES"])
print(json.dumps({"seconds": min(times), "version": eolearn.__version__}))
"""


def eolearn_rate(cube: Cube, python: str) -> dict[str, Any] | None:
    """eo-learn's best-of-N seconds and rate on `cube` with `python`, whether its output equals the kernel's
    wherever it gives a value, and the share it leaves NaN (where the kernel holds the edge value, as
    np.interp does); None when that interpreter has no eo-learn."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        np.save(f"{folder}/values.npy", cube.values)
        np.save(f"{folder}/source_days.npy", cube.source_days)
        np.save(f"{folder}/target_days.npy", cube.target_days)
        command = [python, "-c", _PEER_CHILD, folder, str(PEER_REPEATS)]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise SystemExit(f"the eo-learn run failed:\n{completed.stderr[-3000:]}")
        figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
        if "missing" in figures:
            return None
        theirs = np.load(f"{folder}/result.npy").transpose(0, 3, 1, 2)
    ours = interpolate_to_grid(cube.values, cube.valid, cube.source_days, cube.target_days)
    given = np.isfinite(theirs)  # eo-learn leaves NaN before a pixel's first and after its last clear date
    figures["agree"] = bool(np.allclose(ours[given], theirs[given], rtol=1e-5, atol=1e-6))
    figures["nan_share"] = float(1 - given.mean())
    figures["rate"] = SIZE * SIZE * FRAMES / 1e6 / figures["seconds"]
    return figures


def main() -> None:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--peer-python", default=sys.executable, help="Interpreter with eo-learn 1.5.7 (default: this one)."
    )
    peer_python = parser.parse_args().peer_python
    compile_s, source = warm_up()
    print(f"numba {numba.__version__}, {get_num_threads()} threads, threading layer {threading_layer()}")
    print(f"first call (tiny cube, not timed below): {compile_s:.2f} s, {source}")
    cube = make_cube()
    gib = cube.values.nbytes / 2**30
    print(
        f"cube (T, C, Y, X) = {cube.values.shape} float32, {gib:.2f} GiB, "
        f"{1 - cube.valid.mean():.1%} invalid; {len(cube.target_days)} target dates"
    )
    seconds = bench_interpolation(cube)
    mpx_frames = SIZE * SIZE * FRAMES / 1e6
    rate = mpx_frames / seconds["interpolate"]
    print(f"interpolation:                {seconds['interpolate']:.3f} s  (best of {REPEATS})")
    print(f"throughput:                   {rate:.1f} Mpx x frames/s")
    peer = eolearn_rate(cube, peer_python)
    if peer is None:
        print(f"eo-learn: not importable by {peer_python}; comparison skipped (see --peer-python)")
    else:
        print(
            f"eo-learn {peer['version']} LinearInterpolationTask, same cube, same run: {peer['seconds']:.2f} s "
            f"(best of {PEER_REPEATS}) = {peer['rate']:.1f} Mpx x frames/s; speed-up {rate / peer['rate']:.0f}x; "
            f"outputs equal where eo-learn gives a value: {peer['agree']} (it leaves {peer['nan_share']:.1%} NaN "
            "before a pixel's first / after its last clear date, where the kernel holds the edge value)"
        )
    for name, label in (("numpy_multiply", "values * 1.0"), ("numpy_nansum", "np.nansum(values)")):
        ratio = seconds["interpolate"] / seconds[name]
        print(f"numpy pass {label + ':':<19} {seconds[name]:.3f} s  (interpolation / pass = {ratio:.2f})")
    del cube
    print("features stage end to end (Zarr cube in, Zarr features out), each run in a fresh process:")
    for side in (SIZE, 2 * SIZE):  # the second cube has 4x the pixels
        figures = stage_run(side)
        print(
            f"  {FRAMES} frames x {side} x {side} px: {figures['seconds']:.2f} s, "
            f"{side * side * FRAMES / 1e6 / figures['seconds']:.1f} Mpx x frames/s end to end, "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB (cube on disk {figures['cube_mib']:.0f} MiB)"
        )
        print(
            f"    plain read of the same cube: {figures['read_seconds']:.2f} s, "
            f"stage / plain read = {figures['seconds'] / figures['read_seconds']:.2f}"
        )


# VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child would report its parent's peak.
_STAGE_CHILD = """
import json, sys, time
from deep_lulc.stages.features import stage
from deep_lulc.stages.features.params import FeaturesParams
started = time.perf_counter()
stage.run(inputs={"cube": sys.argv[1]}, output=sys.argv[2], params=FeaturesParams())
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mib": peak / 1024}))
"""

# Every chunk of both variables once, a column of chunks (every frame of one chunk's pixels) per call, as
# the stage reads them; decoded into numpy and dropped.
_PLAIN_READ_CHILD = """
import json, sys, time, zarr
group = zarr.open_group(sys.argv[1], mode="r", zarr_format=2)
started = time.perf_counter()
for name in ("reflectance", "scl"):
    array = group[name]
    (rows, cols), (height, width) = array.chunks[-2:], array.shape[-2:]
    for row in range(0, height, rows):
        for col in range(0, width, cols):
            array[..., row : row + rows, col : col + cols]
print(json.dumps({"read_seconds": time.perf_counter() - started}))
"""


def stage_run(side: int) -> dict[str, float]:
    """Write a random cube catalog of `side` x `side` px, read it once plainly then run the features stage
    on it, each in a child process (the cube is in the page cache for both).

    The child's peak RSS shows whether the stage streams: it must not grow with the AOI.
    """
    import datetime as dt
    import json
    import subprocess
    import sys
    import tempfile

    from affine import Affine

    from tests.cube_data import write_cube_catalog

    rng = np.random.default_rng(side)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        reflectance = rng.uniform(0.0, 0.4, (FRAMES, 6, side, side)).astype(np.float32)
        scl = np.where(rng.random((FRAMES, side, side)) < 0.3, 9, 4).astype(np.uint8)
        start = dt.datetime(2023, 1, 1, 10, tzinfo=dt.UTC)
        times = [start + dt.timedelta(days=6 * t) for t in range(FRAMES)]
        catalog = write_cube_catalog(
            root / "cube",
            reflectance=reflectance,
            scl=scl,
            times=times,
            transform=Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_100_000.0),
            epsg=32633,
            start=start.date(),
            end=dt.date(2023, 12, 31),
        )
        del reflectance, scl
        cube_mib = sum(p.stat().st_size for p in (root / "cube").rglob("*") if p.is_file()) / 2**20
        store = next((root / "cube").rglob("cube.zarr"))
        read = subprocess.run(
            [sys.executable, "-c", _PLAIN_READ_CHILD, str(store)], capture_output=True, text=True, check=True
        )
        completed = subprocess.run(
            [sys.executable, "-c", _STAGE_CHILD, catalog, str(root / "features")],
            capture_output=True,
            text=True,
            check=True,
        )
        figures: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
        figures["cube_mib"] = cube_mib
        figures.update(json.loads(read.stdout.strip().splitlines()[-1]))
        return figures


if __name__ == "__main__":
    main()

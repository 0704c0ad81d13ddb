"""How fast the `features` stage's temporal interpolation runs, against one plain numpy pass and eo-learn.

Run: .venv/bin/python -m benchmarks.features

The cube is a year of Sentinel-2 at 60 frames (about every 6 days), 500 x 500 pixels, 9 bands, stored
(T, C, Y, X) float32 as the stage holds it, with about 30 % of pixels cloudy in blobs (NaN, as a masked
read gives them). It is resampled to 23 dates on a 16-day step. eo-learn's `LinearInterpolationTask`
manages about 1.6 Mpx x frames per second on such input; the figure to beat here is 48.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
from numba.np.ufunc import get_num_threads, threading_layer
from scipy import ndimage

from deep_lulc.stages.features.interpolation import interpolate_to_grid

FRAMES, BANDS, SIZE = 60, 9, 500
TARGET_DATES, TARGET_STEP_DAYS = 23, 16.0
CLOUD_FRACTION = 0.30
EOLEARN_MPX_FRAMES_PER_S = 1.6
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


def warm_up() -> float:
    """Seconds to compile the kernel (or load it from numba's cache), kept out of the timed runs."""
    started = time.perf_counter()
    tiny = np.ones((3, 2, 4, 4), dtype=np.float32)
    interpolate_to_grid(tiny, np.ones((3, 4, 4), dtype=bool), np.arange(3.0), np.arange(2.0))
    return time.perf_counter() - started


def best_seconds(action: object, repeats: int = REPEATS) -> float:
    assert callable(action)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_interpolation(cube: Cube) -> dict[str, float]:
    """Best-of-N seconds of `interpolate_to_grid` and of two numpy passes over the same array."""
    interpolate = best_seconds(lambda: interpolate_to_grid(cube.values, cube.valid, cube.source_days, cube.target_days))
    copy = best_seconds(lambda: cube.values * np.float32(1.0))
    nansum = best_seconds(lambda: np.nansum(cube.values))
    return {"interpolate": interpolate, "numpy_multiply": copy, "numpy_nansum": nansum}


def main() -> None:
    print(f"numba {numba.__version__}, {get_num_threads()} threads, layer ", end="")
    compile_s = warm_up()
    print(f"{threading_layer()}; warm-up (compile or cache load) {compile_s:.2f} s, not timed below")
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
    print(f"speed-up over eo-learn (1.6): {rate / EOLEARN_MPX_FRAMES_PER_S:.0f}x")
    for name, label in (("numpy_multiply", "values * 1.0"), ("numpy_nansum", "np.nansum(values)")):
        ratio = seconds["interpolate"] / seconds[name]
        print(f"numpy pass {label + ':':<19} {seconds[name]:.3f} s  (interpolation / pass = {ratio:.2f})")


if __name__ == "__main__":
    main()

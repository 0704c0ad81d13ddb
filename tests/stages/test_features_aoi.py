"""Issue 15: a pixel's features depend on its location, the time range and the parameters, never on the
AOI's extent; the fused per-window kernel and the pipelined windows change no value."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from affine import Affine
from scipy import ndimage

from deep_lulc.shared.errors import NothingToDoError
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.indices import feature_stack, observations
from deep_lulc.stages.features.params import FeaturesParams

from ..cube_data import write_cube_catalog

FRAMES, SIDE = 14, 96
ORIGIN = (500_000.0, 5_100_000.0)
SMALL = (slice(40, 60), slice(24, 44))  # a 200 m x 200 m AOI inside the 960 m one, on the same pixel grid
START = dt.datetime(2023, 3, 1, 10, tzinfo=dt.UTC)


def cloudy_scene(seed: int = 3) -> tuple[np.ndarray, np.ndarray, list[dt.datetime]]:
    """Reflectance and SCL with clouds in blobs (cloud, shadow, cirrus classes) covering up to half of each
    frame, three clear frames, a few missing bands, and a frame clear over the small AOI only."""
    rng = np.random.default_rng(seed)
    reflectance = rng.uniform(0.01, 0.4, (FRAMES, 6, SIDE, SIDE)).astype(np.float32)
    noise = ndimage.gaussian_filter(rng.standard_normal((FRAMES, SIDE, SIDE)), sigma=(0, 6, 6))
    cover = rng.uniform(0.0, 0.5, FRAMES)
    cover[[0, 7, 12]] = 0.0  # clear everywhere: the frames the whole-AOI rule keeps
    cloudy = noise < np.array([np.quantile(frame, c) for frame, c in zip(noise, cover, strict=True)])[:, None, None]
    cloudy[3] = True
    cloudy[3][SMALL] = False  # clear over the small AOI only: the whole-AOI rule drops it for the big one
    scl = np.where(cloudy, rng.choice(np.array([3, 8, 9, 10], dtype=np.uint8), cloudy.shape), 4).astype(np.uint8)
    scl[rng.random(scl.shape) < 0.05] = 5
    scl[:, 45:47, 30] = 9  # two pixels of the small AOI never clear: NaN features, compared too
    holes = rng.random(reflectance.shape[:1] + reflectance.shape[2:]) < 0.002
    reflectance[:, 2][holes] = np.nan  # a missing band makes an observation unusable
    times = [START + dt.timedelta(days=9 * t) for t in range(FRAMES)]
    return reflectance, scl, times


def cube_of(
    folder: Path, reflectance: np.ndarray, scl: np.ndarray, times: list[dt.datetime], rows: slice, cols: slice
) -> str:
    """The cube of the window `rows` x `cols` of the scene: the AOI is that window's footprint."""
    transform = Affine(10.0, 0.0, ORIGIN[0] + 10.0 * cols.start, 0.0, -10.0, ORIGIN[1] - 10.0 * rows.start)
    return write_cube_catalog(
        folder,
        reflectance=reflectance[:, :, rows, cols],
        scl=scl[:, rows, cols],
        times=times,
        transform=transform,
        epsg=32633,
        start=dt.date(2023, 3, 1),
        end=dt.date(2023, 7, 31),
    )


def features_of(catalog: str, out: Path, params: FeaturesParams) -> tuple[xr.Dataset, dict[str, object]]:
    result = features.run(inputs={"cube": catalog}, output=str(out), params=params)
    dataset: xr.Dataset = xr.open_zarr(result.extra["features"], consolidated=True).load()
    return dataset, dict(result.extra)


@pytest.fixture(scope="module")
def two_aois(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("aois")
    reflectance, scl, times = cloudy_scene()
    big = cube_of(folder / "big", reflectance, scl, times, slice(0, SIDE), slice(0, SIDE))
    small = cube_of(folder / "small", reflectance, scl, times, *SMALL)
    return big, small


def common_pixels(big: xr.Dataset, small: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    inner = big.sel(y=small.y, x=small.x)
    assert inner.sizes == small.sizes  # the small AOI's pixels are pixels of the big grid
    return inner, small


@pytest.mark.parametrize("chunk_size", [32, 64])
def test_features_of_a_pixel_do_not_depend_on_the_aoi(
    two_aois: tuple[str, str], tmp_path: Path, chunk_size: int
) -> None:
    big_catalog, small_catalog = two_aois
    params = FeaturesParams(chunk_size=chunk_size)  # per-pixel validity is the default
    big, big_extra = features_of(big_catalog, tmp_path / "big", params)
    small, _ = features_of(small_catalog, tmp_path / "small", params)
    inner, small = common_pixels(big, small)
    assert np.isnan(small["features"].values).any()
    np.testing.assert_array_equal(inner["features"].values, small["features"].values)  # NaN positions included
    np.testing.assert_array_equal(inner["valid_count"].values, small["valid_count"].values)
    assert inner["features"].values.tobytes() == small["features"].values.tobytes()
    assert big_extra["frames_kept"] == FRAMES  # every frame is valid somewhere, so every frame is used


def test_the_whole_aoi_rule_makes_the_same_pixels_differ(two_aois: tuple[str, str], tmp_path: Path) -> None:
    """The scene above is one on which the original rule (--frame-filter aoi) fails the test above."""
    big_catalog, small_catalog = two_aois
    params = FeaturesParams(chunk_size=32, frame_filter="aoi", min_valid=0.99)
    big, big_extra = features_of(big_catalog, tmp_path / "big", params)
    small, small_extra = features_of(small_catalog, tmp_path / "small", params)
    inner, small = common_pixels(big, small)
    assert int(str(big_extra["frames_kept"])) < int(str(small_extra["frames_kept"]))
    different = ~((inner["features"].values == small["features"].values) | np.isnan(small["features"].values))
    assert different.mean() > 0.05


def test_a_pixel_uses_every_observation_where_it_is_valid(two_aois: tuple[str, str], tmp_path: Path) -> None:
    big_catalog, _ = two_aois
    reflectance, scl, _ = cloudy_scene()
    dataset, extra = features_of(big_catalog, tmp_path / "f", FeaturesParams(chunk_size=32))
    _, usable = observations(reflectance, scl, FeaturesParams().valid_scl)
    np.testing.assert_array_equal(dataset["valid_count"].values, usable.sum(axis=0))
    frames = json.loads(next((tmp_path / "f").rglob("frames.json")).read_text())
    assert frames["frame_filter"] == "pixel"
    np.testing.assert_allclose([f["valid_fraction"] for f in frames["frames"]], usable.mean(axis=(1, 2)), atol=1e-6)
    assert [f["kept"] for f in frames["frames"]] == usable.any(axis=(1, 2)).tolist()
    assert extra["frames_dropped"] == 0


def test_windows_and_the_pipeline_change_no_value(two_aois: tuple[str, str], tmp_path: Path) -> None:
    """One window for the whole grid (no pipeline) against 9 pipelined windows, and a second identical run."""
    big_catalog, _ = two_aois
    whole, _ = features_of(big_catalog, tmp_path / "one", FeaturesParams(chunk_size=128))
    tiled, _ = features_of(big_catalog, tmp_path / "nine", FeaturesParams(chunk_size=32))
    again, _ = features_of(big_catalog, tmp_path / "again", FeaturesParams(chunk_size=32))
    assert (
        whole["features"].values.tobytes() == tiled["features"].values.tobytes() == again["features"].values.tobytes()
    )
    np.testing.assert_array_equal(whole["valid_count"].values, tiled["valid_count"].values)


def test_no_usable_observation_in_the_aoi_is_nothing_to_do(two_aois: tuple[str, str], tmp_path: Path) -> None:
    _, small_catalog = two_aois
    with pytest.raises(NothingToDoError, match=r"no pixel of the AOI has a usable observation in any of 14 frames"):
        features.run(inputs={"cube": small_catalog}, output=str(tmp_path / "f"), params=FeaturesParams(valid_scl=(1,)))
    assert not (tmp_path / "f" / "catalog.json").exists()


def test_fused_observations_equal_the_numpy_definition() -> None:
    rng = np.random.default_rng(5)
    reflectance = rng.uniform(-0.1, 0.4, (5, 6, 17, 23)).astype(np.float32)
    reflectance[rng.random(reflectance.shape) < 0.05] = np.nan
    zero = rng.random((5, 17, 23)) < 0.05
    reflectance[:, 2][zero] = reflectance[:, 3][zero] = 0.0  # NDVI 0 / 0
    reflectance[:, 1][zero] = -reflectance[:, 3][zero]  # NDWI x / 0
    scl = rng.integers(0, 12, (5, 17, 23)).astype(np.uint8)
    stack, valid = observations(reflectance, scl, (4, 5, 6))
    expected = feature_stack(reflectance)
    assert stack.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(valid, np.isin(scl, [4, 5, 6]) & np.isfinite(expected).all(axis=1))
    assert 0 < valid.mean() < 1
    with pytest.raises(ValueError, match="reflectance must be"):
        observations(reflectance.astype(np.float64), scl, (4,))


def test_the_preview_is_sampled_on_the_whole_grid_whatever_the_windows() -> None:
    """A large AOI's preview is every n-th pixel of the grid, assembled from the windows' own samples."""
    from deep_lulc.shared.geo.windows import blocks
    from deep_lulc.stages.features.streaming import assemble_preview, preview_sample

    rgb = np.random.default_rng(0).random((3, 301, 203), dtype=np.float32)
    for stride, block in ((1, 64), (3, 64), (4, 50), (7, 32)):
        windows = blocks(301, 203, block)
        pieces = [preview_sample(rgb[(slice(None), *w.slices)], w, stride) for w in windows]
        np.testing.assert_array_equal(assemble_preview(windows, pieces, (301, 203), stride), rgb[:, ::stride, ::stride])


def test_the_fused_kernel_equals_the_stack_then_interpolation_bit_for_bit() -> None:
    """The stage interpolates from the six bands, computing indices only at the two frames each date
    blends; that must be exactly the stack of every frame interpolated, zero denominators and NaN included."""
    from deep_lulc.stages.features.indices import interpolated_features, observations, usable_observations
    from deep_lulc.stages.features.interpolation import interpolate_to_grid

    rng = np.random.default_rng(1)
    frames, height, width = 17, 23, 29
    reflectance = rng.uniform(-0.05, 0.4, (frames, 6, height, width)).astype(np.float32)
    reflectance[rng.random(reflectance.shape) < 0.02] = np.nan
    zero = rng.random((frames, height, width)) < 0.05
    reflectance[:, 3][zero] = reflectance[:, 2][zero] = 0.0  # NDVI's denominator B08 + B04 is zero there
    scl = np.where(rng.random((frames, height, width)) < 0.3, 9, 4).astype(np.uint8)
    scl[:, :3, :3] = 9  # never observed: NaN throughout
    source = np.cumsum(rng.integers(4, 20, frames)).astype(np.float64)
    target = source[0] - 5 + 16.0 * np.arange(12)  # before the first, on and after the last observation
    stack, valid = observations(reflectance, scl, (4, 5, 6))
    expected = interpolate_to_grid(stack, valid, source, target)
    usable = usable_observations(reflectance, scl, (4, 5, 6))
    np.testing.assert_array_equal(usable, valid)
    fused = interpolated_features(reflectance, usable, source, target)
    np.testing.assert_array_equal(fused.view(np.uint32), expected.view(np.uint32))
    assert np.isnan(fused[:, :, :3, :3]).all()

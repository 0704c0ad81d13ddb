"""`deep-lulc features`: per-pixel validity, the whole-AOI frame filter, FEATURES, interpolation onto the date
grid, streaming, real SCL."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
from affine import Affine

from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.indices import CHANNELS
from deep_lulc.stages.features.params import FeaturesParams

from ..conftest import BIN, CUBE_PERIOD, REALDATA, TINY, cli_env, validate_tree
from ..cube_data import write_cube_catalog

SLOVENIA_SCL = REALDATA / "pixels/eo-learn_TestEOPatch_slovenia_36-frames_with_SCL"


def open_item(catalog_href: str) -> tuple[pystac.Item, xr.Dataset]:
    item = next(iter(pystac.Catalog.from_file(catalog_href).get_items(recursive=True)))
    return item, xr.open_zarr(item.assets["data"].get_absolute_href(), consolidated=True)


def test_features_item_and_store(tiny_features: str) -> None:
    assert validate_tree(tiny_features) == 3
    item, dataset = open_item(tiny_features)
    assert dataset["features"].dims == ("time", "channel", "y", "x")
    assert (
        list(dataset.channel.values)
        == list(CHANNELS)
        == ["B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NDBI"]
    )
    assert dataset["features"].dtype == np.float32
    dates = [np.datetime_as_string(t, unit="D") for t in dataset.time.values]
    assert dates[0] == f"{TINY.year}-01-01"
    assert len(dates) == 23  # every 16 days through the year
    assert all(np.diff(dataset.time.values).astype("timedelta64[D]").astype(int) == 16)
    assert item.properties["cube:dimensions"]["channel"]["values"] == list(CHANNELS)
    assert {"data", "thumbnail", "frames"} <= set(item.assets)
    assert len(item.get_links("derived_from")) == 1


def test_every_frame_is_used_where_it_is_valid_and_its_aoi_fraction_recorded(
    tiny_cube: str, tiny_features: str
) -> None:
    item, dataset = open_item(tiny_features)
    frames = json.loads(Path(item.assets["frames"].get_absolute_href() or "").read_text())["frames"]
    cube_item, cube_data = open_item(tiny_cube)
    assert len(frames) == cube_data.sizes["time"]
    valid = features.valid_observations(cube_data["scl"], cube_data["reflectance"], (4, 5, 6, 7, 11)).values
    inside = features.aoi_mask(cube_item, valid.shape[1:])
    assert 0.9 < inside.mean() <= 1.0  # the AOI polygon fills most of its bounding box
    for frame, mask in zip(frames, valid, strict=True):
        assert frame["valid_fraction"] == pytest.approx(mask[inside].mean(), abs=1e-6)
        assert frame["kept"] == (frame["valid_fraction"] > 0)
    assert any(f["valid_fraction"] < 0.99 for f in frames)  # a cloudy frame, used where it is clear
    np.testing.assert_array_equal(dataset["valid_count"].values, valid.sum(axis=0))
    assert item.properties["deep-lulc:frames_kept"] == sum(f["kept"] for f in frames)


def test_frames_below_min_valid_are_dropped_and_counted_with_the_aoi_rule(tiny_cube: str, tmp_path: Path) -> None:
    result = features.run(
        inputs={"cube": tiny_cube},
        output=str(tmp_path / "f"),
        params=FeaturesParams(chunk_size=64, frame_filter="aoi"),
    )
    item, dataset = open_item(result.catalog)
    frames = json.loads(Path(item.assets["frames"].get_absolute_href() or "").read_text())["frames"]
    cube_item, cube_data = open_item(tiny_cube)
    assert len(frames) == cube_data.sizes["time"]
    valid = features.valid_observations(cube_data["scl"], cube_data["reflectance"], (4, 5, 6, 7, 11)).values
    inside = features.aoi_mask(cube_item, valid.shape[1:])
    for frame, mask in zip(frames, valid, strict=True):
        assert frame["valid_fraction"] == pytest.approx(mask[inside].mean(), abs=1e-6)
        assert frame["kept"] == (frame["valid_fraction"] >= 0.99)
    kept = np.array([f["kept"] for f in frames])
    assert 0 < kept.sum() < len(frames)
    assert result.extra["frames_kept"] == kept.sum()
    assert result.extra["frames_dropped"] == (~kept).sum()
    np.testing.assert_array_equal(dataset["valid_count"].values, valid[kept].sum(axis=0))


def test_interpolation_matches_a_per_pixel_reference(tiny_cube: str, tiny_features: str) -> None:
    _, dataset = open_item(tiny_features)
    _, cube_data = open_item(tiny_cube)
    kept = np.ones(cube_data.sizes["time"], dtype=bool)  # per-pixel validity: every frame, where it is valid
    reflectance = cube_data["reflectance"].values[kept]
    valid = features.valid_observations(cube_data["scl"], cube_data["reflectance"], (4, 5, 6, 7, 11)).values[kept]
    epoch = np.datetime64(f"{TINY.year}-01-01", "ns")
    source = (cube_data.time.values[kept] - epoch) / np.timedelta64(1, "D")
    target = (dataset.time.values - epoch) / np.timedelta64(1, "D")
    rng = np.random.default_rng(0)
    for y, x in zip(rng.integers(0, dataset.sizes["y"], 25), rng.integers(0, dataset.sizes["x"], 25), strict=True):
        usable = valid[:, y, x]
        red, nir = reflectance[:, 2, y, x], reflectance[:, 3, y, x]
        ndvi = (nir - red) / (nir + red)
        got_red = dataset["features"].sel(channel="B04").values[:, y, x]
        got_ndvi = dataset["features"].sel(channel="NDVI").values[:, y, x]
        if not usable.any():
            assert np.isnan(got_red).all()
            continue
        np.testing.assert_allclose(got_red, np.interp(target, source[usable], red[usable]), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_ndvi, np.interp(target, source[usable], ndvi[usable]), rtol=1e-5, atol=1e-6)


def test_all_frames_below_min_valid_exits_3_naming_the_best(tiny_cube: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "features",
            "--cube",
            tiny_cube,
            "--out",
            str(tmp_path / "f"),
            "--valid-scl",
            "4",
            "--frame-filter",
            "aoi",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 3, completed.stderr
    message = completed.stderr.strip().splitlines()[-1]
    assert "every one of 6 frames is below --min-valid 0.99 (best 0." in message
    assert "lower --min-valid (e.g. 0." in message
    assert not (tmp_path / "f" / "catalog.json").exists()


def test_no_usable_observation_anywhere_exits_3(tiny_cube: str, tmp_path: Path) -> None:
    completed = subprocess.run(
        [str(BIN / "deep-lulc"), "features", "--cube", tiny_cube, "--out", str(tmp_path / "f"), "--valid-scl", "1"],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 3, completed.stderr
    message = completed.stderr.strip().splitlines()[-1]
    assert "no pixel of the AOI has a usable observation in any of 6 frames (SCL classes [1]" in message
    assert "fix: extend the time range or widen --valid-scl" in message
    assert not (tmp_path / "f" / "catalog.json").exists()


def test_unknown_scl_class_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown SCL classes \[12\]"):
        FeaturesParams(valid_scl=(4, 12))


@pytest.mark.needs_shared
def test_valid_mask_equals_eo_learn_on_real_slovenia_scl(tmp_path: Path) -> None:
    scl = np.load(SLOVENIA_SCL / "mask/SCL.npy")[..., 0].astype(np.uint8)  # (36, 101, 100)
    expected = np.load(SLOVENIA_SCL / "mask/VALID_DATA_S2C.npy")[..., 0]
    valid_frac = np.load(SLOVENIA_SCL / "scalar/VALID_FRAC.npy")[:, 0]
    reflectance = np.full((scl.shape[0], 6, *scl.shape[1:]), 0.1, dtype=np.float32)
    mask = features.valid_observations(
        xr.DataArray(scl, dims=("time", "y", "x")),
        xr.DataArray(reflectance, dims=("time", "band", "y", "x")),
        (4, 5, 6, 7),
    ).values
    np.testing.assert_array_equal(mask, expected)  # eo-learn's own SCL validity: classes 4-7

    stamps = json.loads((SLOVENIA_SCL / "timestamps.json").read_text())
    times = [dt.datetime.fromisoformat(s).replace(tzinfo=dt.UTC) for s in stamps]
    bbox = json.loads((SLOVENIA_SCL / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in bbox], [p[1] for p in bbox]
    transform = Affine.translation(min(xs), max(ys)) * Affine.scale(
        (max(xs) - min(xs)) / scl.shape[2], -(max(ys) - min(ys)) / scl.shape[1]
    )
    catalog = write_cube_catalog(
        tmp_path / "cube",
        reflectance=reflectance,
        scl=scl,
        times=times,
        transform=transform,
        epsg=32633,
        start=times[0].date(),
        end=times[-1].date(),
    )
    result = features.run(
        inputs={"cube": catalog},
        output=str(tmp_path / "features"),
        params=FeaturesParams(valid_scl=(4, 5, 6, 7), min_valid=0.5, frame_filter="aoi"),
    )
    item, _ = open_item(result.catalog)
    frames = json.loads(Path(item.assets["frames"].get_absolute_href() or "").read_text())["frames"]
    np.testing.assert_allclose([f["valid_fraction"] for f in frames], valid_frac, atol=1e-6)
    assert [f["kept"] for f in frames] == list(valid_frac >= 0.5)

    per_pixel = features.run(
        inputs={"cube": catalog}, output=str(tmp_path / "per-pixel"), params=FeaturesParams(valid_scl=(4, 5, 6, 7))
    )
    item, dataset = open_item(per_pixel.catalog)
    frames = json.loads(Path(item.assets["frames"].get_absolute_href() or "").read_text())["frames"]
    np.testing.assert_allclose([f["valid_fraction"] for f in frames], valid_frac, atol=1e-6)
    np.testing.assert_array_equal(dataset["valid_count"].values, expected.sum(axis=0))  # 13 to 26 of 36 frames
    assert per_pixel.extra["frames_kept"] == int((valid_frac > 0).sum())


@pytest.mark.slow
def test_cube_and_features_on_s3(tiny_catalog: Path, s3_bucket: str) -> None:
    cube_result = cube.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-predict.geojson")},
        output=f"s3://{s3_bucket}/cube",
        params=CubeParams(**CUBE_PERIOD),
    )
    result = features.run(
        inputs={"cube": cube_result.catalog}, output=f"s3://{s3_bucket}/features", params=FeaturesParams()
    )
    assert result.catalog == f"s3://{s3_bucket}/features/catalog.json"
    store = result.extra["features"]
    dataset = xr.open_zarr(
        store, consolidated=True, storage_options={"client_kwargs": {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}}
    )
    assert dataset["features"].shape[:2] == (23, 9)
    assert np.isfinite(dataset["features"].isel(time=10).values).mean() > 0.99


@pytest.mark.slow
def test_cube_and_features_on_an_existing_dask_cluster(tiny_catalog: Path, tiny_cube: str, tmp_path: Path) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None) as cluster:  # type: ignore[no-untyped-call]
        result = cube.run(
            inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
            output=str(tmp_path / "cube"),
            params=CubeParams(**CUBE_PERIOD, dask_address=cluster.scheduler_address),
        )
        distributed_features = features.run(
            inputs={"cube": result.catalog},
            output=str(tmp_path / "features"),
            params=FeaturesParams(chunk_size=64, dask_address=cluster.scheduler_address),
        )
    _, on_cluster = open_item(result.catalog)
    _, local = open_item(tiny_cube)
    xr.testing.assert_identical(on_cluster["reflectance"].load(), local["reflectance"].load())
    local_features = features.run(
        inputs={"cube": tiny_cube}, output=str(tmp_path / "local"), params=FeaturesParams(chunk_size=64)
    )
    xr.testing.assert_identical(
        open_item(distributed_features.catalog)[1]["features"].load(),
        open_item(local_features.catalog)[1]["features"].load(),
    )


@pytest.mark.slow
def test_cube_reads_cogs_from_s3(s3_bucket: str, tmp_path: Path) -> None:
    from deep_lulc.stages.synth import stage as synth
    from deep_lulc.stages.synth.params import SynthParams

    source = synth.run(inputs={}, output=f"s3://{s3_bucket}/synth", params=SynthParams(seed=8, size=128, dates=4))
    local = synth.run(inputs={}, output=str(tmp_path / "synth"), params=SynthParams(seed=8, size=128, dates=4))
    results: list[StageResult] = []
    for catalog, aoi, loader in (
        (source.catalog, str(tmp_path / "synth" / "aoi-train.geojson"), "odc-stac"),
        (source.catalog, str(tmp_path / "synth" / "aoi-train.geojson"), "stackstac"),
        (local.catalog, str(tmp_path / "synth" / "aoi-train.geojson"), "odc-stac"),
    ):
        results.append(
            cube.run(
                inputs={"stac": catalog, "aoi": aoi},
                output=str(tmp_path / f"cube-{len(results)}"),
                params=CubeParams(**CUBE_PERIOD, loader=loader),
            )
        )
    from_s3 = open_item(results[0].catalog)[1]["reflectance"].load()
    assert np.isfinite(from_s3.values).mean() > 0.3
    xr.testing.assert_identical(from_s3, open_item(results[2].catalog)[1]["reflectance"].load())
    np.testing.assert_array_equal(
        open_item(results[1].catalog)[1]["reflectance"].sel(band="B04").values, from_s3.sel(band="B04").values
    )

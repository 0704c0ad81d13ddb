"""Zarr products: every chunk is stored, a store that lost or truncated an object is bad input naming it, and
the stores carry their CRS the CF way, as rioxarray and GDAL's Zarr driver read it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from pystac.extensions.datacube import DatacubeExtension
from rasterio.crs import CRS
from shapely.geometry import box, mapping

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.io.integrity import file_checksum
from deep_lulc.shared.models.inference import FeatureSource
from deep_lulc.shared.products import features, zarr_store
from deep_lulc.shared.products.cube import open_cube
from deep_lulc.shared.products.zarr_store import ZarrLocation

from ...conftest import BIN, cli_env, validate_tree
from ...cube_data import write_cube_catalog

SIZE, BLOCK, DATES = 40, 16, 4  # 3 x 3 windows, the last row and column partial
CHANNELS = ("B04", "B08", "NDVI")
GRID = grids.geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), SIZE, SIZE)
UTM33 = CRS.from_epsg(32633)
EMPTY_WINDOW = (1, 2)  # a window with no valid observation: every value is a fill value


def cube_item_for(grid: grids.GeoBox) -> pystac.Item:
    """The few cube-item fields the features item takes over (footprint, period, datacube dimensions)."""
    item = pystac.Item(
        "cube-test",
        geometry=mapping(box(15.26, 46.19, 15.27, 46.20)),
        bbox=[15.26, 46.19, 15.27, 46.20],
        datetime=None,
        properties={"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2023-12-31T23:59:59Z"},
    )
    minx, miny, maxx, maxy = grid.boundingbox
    item.properties["cube:dimensions"] = {
        "time": {"type": "temporal", "extent": ["2023-01-01T00:00:00Z", "2023-12-31T00:00:00Z"]},
        "y": {"type": "spatial", "axis": "y", "extent": [miny, maxy], "step": -10.0, "reference_system": 32633},
        "x": {"type": "spatial", "axis": "x", "extent": [minx, maxx], "step": 10.0, "reference_system": 32633},
    }
    item.stac_extensions.append(DatacubeExtension.get_schema_uri())
    return item


def write_tiny_features(folder: Path, *, seed: int = 0) -> tuple[str, np.ndarray, np.ndarray]:
    """A features catalog written through the product, window by window as the stage does; returns its
    href and the arrays written (features with NaN where never valid, and valid counts)."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 0.5, (DATES, len(CHANNELS), SIZE, SIZE)).astype(np.float32)
    counts = rng.integers(1, 6, (SIZE, SIZE)).astype(np.int16)
    row, col = EMPTY_WINDOW
    empty = (slice(row * BLOCK, (row + 1) * BLOCK), slice(col * BLOCK, (col + 1) * BLOCK))
    values[(..., *empty)] = np.nan
    counts[empty] = 0
    times = np.array([np.datetime64(dt.date(2023, 1, 1) + dt.timedelta(days=16 * k), "ns") for k in range(DATES)])
    item_dir = folder / "features-test"
    item_dir.mkdir(parents=True)
    store = item_dir / features.ZARR_NAME
    centres = np.arange(SIZE) + 0.5
    features.create_store(
        store,
        grid=GRID,
        times=times,
        channels=CHANNELS,
        y=5_117_000.0 - 10.0 * centres,
        x=520_000.0 + 10.0 * centres,
        block=BLOCK,
        attrs={"start_datetime": "2023-01-01T00:00:00Z"},
    )
    location = ZarrLocation.at(str(store))
    for y0 in range(0, SIZE, BLOCK):
        for x0 in range(0, SIZE, BLOCK):
            rows, cols = slice(y0, min(y0 + BLOCK, SIZE)), slice(x0, min(x0 + BLOCK, SIZE))
            features.write_window(
                location, {"y": rows, "x": cols}, features=values[:, :, rows, cols], valid_count=counts[rows, cols]
            )
    manifest = features.finish_store(store)
    item = features.features_item(
        "features-test",
        cube_item=cube_item_for(GRID),
        grid=GRID,
        times=times,
        channels=CHANNELS,
        store=store,
        manifest=manifest,
        properties={"deep-lulc:step_days": 16},
    )
    catalog = pystac.Catalog(id="features", description="test features")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json"), values, counts


def store_path(catalog: str, name: str = features.ZARR_NAME) -> Path:
    return next(Path(catalog).parent.rglob(name))


def test_a_written_store_reads_back_with_its_grid_and_manifest(tmp_path: Path) -> None:
    catalog, values, counts = write_tiny_features(tmp_path)
    assert validate_tree(catalog) == 2
    item, dataset = opened = features.open_features(catalog)
    np.testing.assert_array_equal(dataset["features"].values, values)
    np.testing.assert_array_equal(dataset["valid_count"].values, counts)
    assert opened.grid == GRID
    assert item.properties["cube:dimensions"]["channel"]["values"] == list(CHANNELS)
    manifest_asset = item.assets["manifest"]
    data = Path(manifest_asset.get_absolute_href() or "").read_bytes()
    assert manifest_asset.extra_fields["file:size"] == len(data)
    assert manifest_asset.extra_fields["file:checksum"] == file_checksum(data)
    recorded = json.loads(data)["sizes"]
    on_disk = {p.relative_to(store_path(catalog)).as_posix() for p in store_path(catalog).rglob("*") if p.is_file()}
    assert set(recorded) == on_disk - {zarr_store.GDAL_PAM}  # GDAL's sidecar, which GDAL may rewrite
    assert zarr_store.GDAL_PAM in on_disk
    assert len([key for key in recorded if key.startswith("features/") and "/." not in key]) == 9  # 3 x 3 chunks


def test_all_fill_chunks_are_stored_so_missing_always_means_lost(tmp_path: Path) -> None:
    catalog, _, _ = write_tiny_features(tmp_path)
    recorded = json.loads(Path(zarr_store.manifest_href(str(store_path(catalog)))).read_text())["sizes"]
    row, col = EMPTY_WINDOW
    assert f"features/0.0.{row}.{col}" in recorded  # every value NaN, the fill value
    assert f"valid_count/{row}.{col}" in recorded  # every value 0, the fill value
    assert "spatial_ref/0" in recorded


def cube_catalog(folder: Path) -> str:
    rng = np.random.default_rng(1)
    return write_cube_catalog(
        folder,
        reflectance=rng.uniform(0, 0.4, (2, 6, 8, 8)),
        scl=np.full((2, 8, 8), 4),
        times=[dt.datetime(2023, 1, 1, tzinfo=dt.UTC), dt.datetime(2023, 1, 6, tzinfo=dt.UTC)],
        transform=GRID.affine,
        epsg=32633,
        start=dt.date(2023, 1, 1),
        end=dt.date(2023, 1, 31),
    )


@pytest.mark.parametrize("product", ["features", "cube"])
def test_stores_carry_their_crs_for_rioxarray_and_gdal(tmp_path: Path, product: str) -> None:
    if product == "features":  # written window by window: the region writes must keep the CF attributes
        catalog, _, _ = write_tiny_features(tmp_path)
        store, variables, size = store_path(catalog), features.VARIABLES, SIZE
    else:
        store, variables, size = store_path(cube_catalog(tmp_path), "cube.zarr"), ("reflectance", "scl"), 8
    opened = xr.open_zarr(store)  # xarray's defaults, not decode_coords="all"
    assert "spatial_ref" in opened.coords
    assert "spatial_ref" not in opened.data_vars
    assert opened.rio.crs == UTM33
    assert opened.rio.transform() == GRID.affine
    metadata = json.loads((store / ".zmetadata").read_text())["metadata"]
    for name in variables:
        assert opened[name].rio.crs == UTM33
        assert metadata[f"{name}/.zattrs"]["grid_mapping"] == "spatial_ref"
        with rasterio.open(f'ZARR:"{store}":/{name}') as dataset:  # GDAL's own Zarr driver
            assert dataset.crs == UTM33
            assert dataset.transform == GRID.affine
            assert dataset.shape == (size, size)
    assert metadata["spatial_ref/.zattrs"]["grid_mapping_name"] == "transverse_mercator"


def test_gdal_rewriting_its_sidecar_leaves_the_store_readable(tmp_path: Path) -> None:
    """GDAL rewrites `pam.aux.xml` when asked for statistics (`gdalinfo -stats`): that is no damage."""
    catalog, values, _ = write_tiny_features(tmp_path)
    sidecar = store_path(catalog) / zarr_store.GDAL_PAM
    assert 'dataAxisToSRSAxisMapping="4,3"' in sidecar.read_text()  # features: (time, channel, y, x)
    sidecar.write_text("<PAMDataset><Array name='/features'><Statistics/></Array></PAMDataset>\n")
    np.testing.assert_array_equal(features.open_features(catalog).dataset["features"].values, values)


@pytest.mark.parametrize("key", ["features/0.0.2.1", "valid_count/0.0", ".zmetadata"])
def test_a_deleted_object_is_bad_input_naming_it(tmp_path: Path, key: str) -> None:
    catalog, _, _ = write_tiny_features(tmp_path)
    (store_path(catalog) / key).unlink()
    with pytest.raises(BadInputError, match=rf"1 of \d+ objects missing \({key}\).*re-run `deep-lulc features`"):
        features.open_features(catalog)
    with pytest.raises(BadInputError, match=rf"missing \({key}\)"):
        FeatureSource(
            features.open_store(str(store_path(catalog)), lazy=False)
        )  # opened by the store's own href, as predict's reader does


def test_a_truncated_chunk_is_bad_input_naming_it(tmp_path: Path) -> None:
    catalog, _, _ = write_tiny_features(tmp_path)
    chunk = store_path(catalog) / "features" / "0.0.1.1"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        BadInputError, match=rf"1 truncated \(features/0\.0\.1\.1: {len(data) // 2} of {len(data)} bytes\)"
    ):
        features.open_features(catalog)


def test_several_lost_chunks_are_counted_and_the_first_named(tmp_path: Path) -> None:
    catalog, _, _ = write_tiny_features(tmp_path)
    for row in range(3):
        for col in range(3):
            (store_path(catalog) / "features" / f"0.0.{row}.{col}").unlink()
    with pytest.raises(BadInputError, match=r"9 of \d+ objects missing \(features/0\.0\.0\.0, .* and 6 more\)"):
        features.open_features(catalog)


def test_a_lost_or_edited_manifest_is_bad_input_when_the_item_recorded_it(tmp_path: Path) -> None:
    catalog, _, _ = write_tiny_features(tmp_path)
    manifest = Path(zarr_store.manifest_href(str(store_path(catalog))))
    document = json.loads(manifest.read_text())
    document["sizes"].pop("features/0.0.0.0")  # hides a lost chunk from the listing check
    manifest.write_text(json.dumps(document))
    with pytest.raises(BadInputError, match=r"manifest of Zarr store .* differs from the one its item recorded"):
        features.open_features(catalog)
    manifest.unlink()
    with pytest.raises(BadInputError, match=r"manifest of Zarr store .* is missing"):
        features.open_features(catalog)


def test_a_store_written_before_manifests_opens_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = tmp_path / "old.zarr"
    xr.Dataset(
        {
            "features": (("time", "channel", "y", "x"), np.zeros((1, 1, 4, 4), np.float32)),
            "valid_count": (("y", "x"), np.ones((4, 4), np.int16)),
        }
    ).to_zarr(store, zarr_format=2, consolidated=True)
    with caplog.at_level(logging.WARNING):
        source = FeatureSource(features.open_store(str(store), lazy=False))
    assert source.height == 4
    assert any("has no manifest" in record.getMessage() for record in caplog.records)


def test_a_writer_that_leaves_chunks_unwritten_cannot_record_a_manifest(tmp_path: Path) -> None:
    store = tmp_path / "features.zarr"
    times = np.array([np.datetime64("2023-01-01", "ns")])
    centres = np.arange(SIZE) + 0.5
    features.create_store(
        store, grid=GRID, times=times, channels=CHANNELS, y=centres, x=centres, block=BLOCK, attrs={}
    )  # metadata only: no window written
    with pytest.raises(RuntimeError, match=r"lacks 18 declared chunks \(features/0\.0\.0\.0"):
        features.finish_store(store)


def test_a_cube_with_a_lost_chunk_is_bad_input(tmp_path: Path) -> None:
    catalog = cube_catalog(tmp_path / "cube")
    assert open_cube(catalog).grid.shape == (8, 8)
    (store_path(catalog, "cube.zarr") / "scl" / "1.0.0").unlink()
    with pytest.raises(BadInputError, match=r"missing \(scl/1\.0\.0\).*re-run `deep-lulc cube`"):
        open_cube(catalog)


@pytest.mark.slow
def test_predict_on_features_with_a_lost_chunk_exits_2_naming_it(
    tiny_features: str, tiny_model: str, tmp_path: Path
) -> None:
    copy = tmp_path / "features"
    shutil.copytree(Path(tiny_features).parent, copy)
    (store_path(str(copy / "catalog.json")) / "features" / "0.0.1.0").unlink()
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            tiny_model,
            "--features",
            str(copy / "catalog.json"),
            "--out",
            str(tmp_path / "map"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    naming = [line for line in completed.stderr.splitlines() if "features/0.0.1.0" in line]
    assert len(naming) == 1
    assert "missing" in naming[0]
    assert "re-upload" in naming[0]
    assert not (tmp_path / "map" / "catalog.json").exists()

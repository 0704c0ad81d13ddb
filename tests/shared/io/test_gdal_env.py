"""Cloud-read GDAL settings: what GDAL is told and what it then asks a server for, on HTTP and on S3
(the moto test server behind a recording proxy), with the user's environment winning and requester-pays
reaching both GDAL and s3fs."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import numpy as np
import pytest
import rasterio
import rasterio.env
from affine import Affine

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import gdal_env, storage
from deep_lulc.shared.io.cog import open_raster, write_cog

from ...range_server import range_server


def small_cog(path: Path, seed: int) -> np.ndarray:
    """A 600 x 600 uint16 COG (internal tiles and overviews), its pixels returned."""
    data = np.random.default_rng(seed).integers(1, 10_000, size=(600, 600), dtype=np.uint16)
    write_cog(path, data, transform=Affine(10, 0, 500_000, 0, -10, 5_000_000), epsg=32633, nodata=0)
    return data


def test_remote_cog_is_read_without_probing_for_side_cars(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    ours = small_cog(served / "ours.tif", seed=1)
    small_cog(served / "plain.tif", seed=2)
    with range_server(tmp_path / "log.jsonl", root=served) as server:
        with open_raster(f"{server.url}/ours.tif") as dataset:
            options = rasterio.env.getenv()
            pixels = dataset.read(1)
        np.testing.assert_array_equal(pixels, ours)
        for key, value in gdal_env.CLOUD_DEFAULTS.items():
            assert options[key] == value
        assert {entry["path"] for entry in server.requests()} == {"/ours.tif"}
        assert {entry["status"] for entry in server.requests()} <= {200, 206}

        server.clear()
        with rasterio.open(f"{server.url}/plain.tif") as dataset:  # GDAL's own defaults, for comparison
            dataset.read(1)
        probed = {entry["path"] for entry in server.requests()} - {"/plain.tif"}
        assert "/" in probed  # the directory listing
        assert "/plain.tif.aux.xml" in probed  # and side-car files, each one a round trip


def test_a_variable_the_user_set_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_cog(tmp_path / "a.tif", seed=3)
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "1")
    monkeypatch.setenv("VSI_CACHE", "FALSE")
    with range_server(tmp_path / "log.jsonl", root=tmp_path) as server, open_raster(f"{server.url}/a.tif") as dataset:
        options = rasterio.env.getenv()
        assert dataset.read(1).shape == (600, 600)
        assert "GDAL_HTTP_MAX_RETRY" not in options  # not shadowed: GDAL reads the user's value
        assert rasterio.env.get_gdal_config("GDAL_HTTP_MAX_RETRY") == 1
        assert str(rasterio.env.get_gdal_config("VSI_CACHE")).upper() == "FALSE"
        assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"  # what the user left alone stays


def test_local_reads_keep_gdal_defaults(tmp_path: Path) -> None:
    small_cog(tmp_path / "a.tif", seed=4)
    with open_raster(tmp_path / "a.tif"):
        assert "GDAL_DISABLE_READDIR_ON_OPEN" not in rasterio.env.getenv()
    assert gdal_env.read_options([str(tmp_path / "a.tif"), "/vsimem/x.tif"]) == {}
    assert gdal_env.read_options(["/vsis3/bucket/a.tif"])["GDAL_HTTP_MAX_RETRY"] == "5"


def test_requester_pays_reaches_gdal_and_s3fs(s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moto = os.environ["AWS_ENDPOINT_URL"]
    client = boto3.client("s3", endpoint_url=moto)
    pixels = {}
    for name, seed in (("paid.tif", 5), ("free.tif", 6)):  # two objects: GDAL caches what it has read
        pixels[name] = small_cog(tmp_path / name, seed=seed)
        client.upload_file(str(tmp_path / name), s3_bucket, name)
    with range_server(tmp_path / "log.jsonl", upstream=moto) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)  # every S3 request passes the recording proxy
        monkeypatch.setenv("AWS_REQUEST_PAYER", "requester")
        href = f"s3://{s3_bucket}/paid.tif"
        with open_raster(href) as dataset:
            options = rasterio.env.getenv()
            payer = rasterio.env.get_gdal_config("AWS_REQUEST_PAYER")
            np.testing.assert_array_equal(dataset.read(1), pixels["paid.tif"])  # a moto-backed read still works
        assert options["AWS_S3_ENDPOINT"] == proxy.url.removeprefix("http://")
        assert payer == "requester"
        assert storage.read_bytes(href) == (tmp_path / "paid.tif").read_bytes()
        assert storage.s3_storage_options()["requester_pays"] is True
        sent = proxy.requests()
        gdal = [entry for entry in sent if entry["headers"].get("user-agent", "").startswith("GDAL")]
        s3fs = [entry for entry in sent if "botocore" in entry["headers"].get("user-agent", "").lower()]
        assert gdal
        assert s3fs
        assert all(entry["headers"].get("x-amz-request-payer") == "requester" for entry in gdal + s3fs)

        proxy.clear()
        monkeypatch.delenv("AWS_REQUEST_PAYER")
        with open_raster(f"s3://{s3_bucket}/free.tif") as dataset:
            np.testing.assert_array_equal(dataset.read(1), pixels["free.tif"])
        assert storage.read_bytes(f"s3://{s3_bucket}/free.tif") == (tmp_path / "free.tif").read_bytes()
        assert proxy.requests()
        assert not any("x-amz-request-payer" in entry["headers"] for entry in proxy.requests())


def test_a_request_payer_value_gdal_would_send_verbatim_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REQUEST_PAYER", "yes")
    with pytest.raises(BadInputError, match=r"AWS_REQUEST_PAYER='yes' is not understood; fix: set AWS_REQUEST_PAY"):
        gdal_env.read_options(["https://example.invalid/a.tif"])
    with pytest.raises(BadInputError, match="AWS_REQUEST_PAYER"):
        storage.s3_storage_options()

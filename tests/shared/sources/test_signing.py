"""`--sign planetary-computer` on `search` and `cube`, signed by the `planetary-computer` package against a
SAS token endpoint on loopback (never the real service): real Planetary Computer items get the token, a
cube is read through signed hrefs only, a failing endpoint is one line with the right exit code, and the
token appears nowhere but in asset hrefs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pystac
import pytest
import xarray as xr

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.shared.stage.logs import RedactingFilter
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams, Loader
from deep_lulc.stages.search import stage as search
from deep_lulc.stages.search.params import SearchParams

from ...conftest import BIN, REALDATA, TINY, cli_env, free_port
from ...http_servers import LoopbackServer, QuietHandler
from ...range_server import range_server

SIGNATURE = "deepLulcTestSignature0123"
TOKEN = f"st=2026-01-01T00%3A00%3A00Z&se=2099-01-01T00%3A00%3A00Z&sp=rl&sv=2024-05-04&sr=c&sig={SIGNATURE}"
PC_ITEMS = REALDATA / "stac/planetary-computer/sentinel-2-l2a/items_T13TDE_2024-08-23_2024-08-25_2-items.json"
PC_AOI = "-105.2,40.0,-105.0,40.2"
PC_DATES = ["--start", "2024-08-23", "--end", "2024-08-25"]
BLOB_HOST = "deeplulctest.blob.core.windows.net"  # never resolved: GDAL reaches it through a loopback proxy
YEAR = {"start": dt.date(TINY.year, 1, 1), "end": dt.date(TINY.year, 12, 31)}


class TokenEndpoint(LoopbackServer):
    """A Planetary Computer SAS token API on loopback: GET /{account}/{container} answers `answer`."""

    def __init__(self, answer: int | str = 200) -> None:
        self.answer = answer
        self.paths: list[str] = []
        self.keys: list[str | None] = []
        endpoint = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                endpoint.paths.append(self.path)
                endpoint.keys.append(self.headers.get("Ocp-Apim-Subscription-Key"))
                if endpoint.answer == "stall":  # accepts, then never answers (until the test ends)
                    endpoint.release.wait(30)
                    return
                if endpoint.answer == "garbage":
                    body, status = b"<html>maintenance</html>", 200
                elif endpoint.answer == 200:
                    body, status = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": TOKEN}).encode(), 200
                else:
                    body, status = b'{"message": "no"}', int(endpoint.answer)
                self.send(status, body)

        super().__init__(Handler, path="/api/sas/v1/token")


@contextmanager
def token_endpoint(monkeypatch: pytest.MonkeyPatch, answer: int | str = 200) -> Iterator[TokenEndpoint]:
    """The endpoint, with the package pointed at it and its token cache empty."""
    import planetary_computer.sas

    with TokenEndpoint(answer) as endpoint:
        monkeypatch.setenv("PC_SDK_SAS_URL", endpoint.url)
        monkeypatch.setenv("DEEP_LULC_HTTP_RETRIES", "2")
        monkeypatch.setenv("DEEP_LULC_HTTP_BACKOFF", "0.01")
        planetary_computer.sas.TOKEN_CACHE.clear()
        yield endpoint
    planetary_computer.sas.TOKEN_CACHE.clear()


def deep_lulc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "deep-lulc"), *args], capture_output=True, text=True, check=False, env=cli_env())


def files_below(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.mark.needs_shared
def test_search_signs_planetary_computer_items(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    out = tmp_path / "items.json"
    with token_endpoint(monkeypatch) as endpoint:
        monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "deepLulcSubscriptionKey")
        completed = deep_lulc(
            "search",
            "--stac",
            str(PC_ITEMS),
            "--aoi",
            PC_AOI,
            *PC_DATES,
            "--sign",
            "planetary-computer",
            "--out",
            str(out),
        )
    assert completed.returncode == 0, completed.stderr
    assert endpoint.paths == ["/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"]  # one token for both items
    assert endpoint.keys == ["deepLulcSubscriptionKey"]
    original = {item.id: item for item in pystac.ItemCollection.from_file(str(PC_ITEMS))}
    signed = pystac.ItemCollection.from_file(str(out))
    assert len(signed) == 2
    for item in signed:
        for key, asset in item.assets.items():
            before = original[item.id].assets[key].href
            if ".blob.core.windows.net/" in before:
                assert asset.href == f"{before}?{TOKEN}"
            else:  # the tile service's previews are not blobs: left alone
                assert asset.href == before
        assert item.get_single_link("collection") is not None  # the field keeps its link (valid STAC)
    record = (tmp_path / "items.json.run.json").read_text()
    assert json.loads(record)["request"]["params"]["sign"] == "planetary-computer"
    for text in (record, completed.stderr, completed.stdout):
        assert SIGNATURE not in text
        assert "deepLulcSubscriptionKey" not in text


@pytest.mark.parametrize("loader", ["odc-stac", "stackstac"])
def test_cube_reads_through_freshly_signed_hrefs(
    loader: Loader,
    tiny_catalog: Path,
    tiny_cube: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tiny catalog's COGs behind a blob store that refuses unsigned reads; one item carries an expired
    token from an earlier search, as a stored ItemCollection would."""
    search.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "local.json"),
        params=SearchParams(**YEAR),
    )
    document = json.loads((tmp_path / "local.json").read_text())
    for index, feature in enumerate(document["features"]):
        for asset in feature["assets"].values():
            relative = Path(asset["href"]).relative_to(tiny_catalog).as_posix()
            asset["href"] = f"http://{BLOB_HOST}/synth/{loader}/{relative}"  # GDAL caches per URL
            if index == 0:
                asset["href"] += "?st=2020-01-01T00%3A00%3A00Z&se=2020-01-02T00%3A00%3A00Z&sp=rl&sig=expired"
    items = tmp_path / "blob-items.json"
    items.write_text(json.dumps(document))
    store = tmp_path / "store"
    (store / "synth").mkdir(parents=True)
    (store / "synth" / loader).symlink_to(tiny_catalog)
    inputs = {"stac": str(items), "aoi": str(tiny_catalog / "aoi-train.geojson")}

    with range_server(tmp_path / "blob.jsonl", root=store, require=f"sig={SIGNATURE}") as blobs:
        monkeypatch.setenv("GDAL_HTTP_PROXY", blobs.url)
        with pytest.raises(BadInputError, match=rf"cannot read asset .* \(http://{BLOB_HOST}/synth/"):
            cube.run(inputs=inputs, output=str(tmp_path / "unsigned"), params=CubeParams(**YEAR, loader=loader))
        assert {entry["status"] for entry in blobs.requests()} == {403}
        blobs.clear()
        caplog.handler.addFilter(RedactingFilter())  # as the CLI's handlers have (logs.configure_logging)
        with token_endpoint(monkeypatch) as endpoint, caplog.at_level(logging.DEBUG):
            result = cube.run(
                inputs=inputs,
                output=str(tmp_path / "cube"),
                params=CubeParams(**YEAR, loader=loader, sign="planetary-computer"),
            )
        reads = blobs.requests()
    assert endpoint.paths == ["/api/sas/v1/token/deeplulctest/synth"]
    assert reads
    assert {entry["host"] for entry in reads} == {BLOB_HOST}
    assert {entry["status"] for entry in reads} <= {200, 206}  # every read carried the fresh token
    assert not any("expired" in entry["query"] for entry in reads)
    assert all(entry["path"].endswith(".tif") for entry in reads)  # cloud defaults: no side-car probes

    catalog = pystac.Catalog.from_file(result.catalog)
    item = next(iter(catalog.get_items(recursive=True)))
    signed = xr.open_zarr(item.assets["data"].get_absolute_href(), consolidated=True)
    reference_item = next(iter(pystac.Catalog.from_file(tiny_cube).get_items(recursive=True)))
    reference = xr.open_zarr(reference_item.assets["data"].get_absolute_href(), consolidated=True)
    if loader == "odc-stac":
        xr.testing.assert_identical(signed["reflectance"].load(), reference["reflectance"].load())
    else:  # the 10 m bands share the lattice (the 20 m ones are resampled differently by each loader)
        ten_metre = ["B02", "B03", "B04", "B08"]
        xr.testing.assert_equal(
            signed["reflectance"].sel(band=ten_metre).load(), reference["reflectance"].sel(band=ten_metre).load()
        )
        xr.testing.assert_equal(signed["scl"].load(), reference["scl"].load())
    for path, data in files_below(tmp_path / "cube").items():
        assert SIGNATURE.encode() not in data, path
    assert "sig=<redacted>" in caplog.text  # GDAL and odc-stac did log the signed hrefs, masked
    assert SIGNATURE not in caplog.text


@pytest.mark.needs_shared
def test_token_endpoint_refusal_is_bad_input(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with token_endpoint(monkeypatch, answer=403) as endpoint:
        completed = deep_lulc(
            "search",
            "--stac",
            str(PC_ITEMS),
            "--aoi",
            PC_AOI,
            *PC_DATES,
            "--sign",
            "planetary-computer",
            "--out",
            str(tmp_path / "items.json"),
        )
    assert completed.returncode == 2, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert errors == [
        f"deep-lulc search: error: Planetary Computer token endpoint {endpoint.url}"
        "/sentinel2l2a01/sentinel2-l2 refused the token request (HTTP 403); fix: check PC_SDK_SAS_URL, and "
        "PC_SDK_SUBSCRIPTION_KEY where the endpoint needs a key"
    ]
    assert not (tmp_path / "items.json").exists()


@pytest.mark.needs_shared
def test_token_endpoint_outage_is_transient(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with token_endpoint(monkeypatch, answer=503) as endpoint:
        completed = deep_lulc(
            "cube",
            "--stac",
            str(PC_ITEMS),
            "--aoi",
            PC_AOI,
            *PC_DATES,
            "--sign",
            "planetary-computer",
            "--out",
            str(tmp_path / "cube"),
        )
    assert completed.returncode == 75, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "Planetary Computer token endpoint http://127.0.0.1:" in errors[0]
    assert "failed after retries" in errors[0]
    assert len(endpoint.paths) == 3  # the first try and DEEP_LULC_HTTP_RETRIES=2 retries
    assert not (tmp_path / "cube" / "catalog.json").exists()


@pytest.mark.needs_shared
def test_token_endpoint_down_or_wrong(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    params = SearchParams(start=dt.date(2024, 8, 23), end=dt.date(2024, 8, 25), sign="planetary-computer")
    inputs = {"stac": str(PC_ITEMS), "aoi": PC_AOI}
    with token_endpoint(monkeypatch):
        monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{free_port()}/token")  # nothing listens
        with pytest.raises(
            TransientError,
            match=r"token endpoint http://127\.0\.0\.1:\d+/token/sentinel2l2a01/"
            r"sentinel2-l2 did not answer after retries \(ConnectionError\)",
        ):
            search.run(inputs=inputs, output=str(tmp_path / "a.json"), params=params)
    garbage = pytest.raises(BadInputError, match=r"did not answer a SAS token .*fix: point PC_SDK_SAS_URL at")
    with token_endpoint(monkeypatch, answer="garbage"), garbage:
        search.run(inputs=inputs, output=str(tmp_path / "b.json"), params=params)
    assert not (tmp_path / "a.json").exists()
    assert not (tmp_path / "b.json").exists()


@pytest.mark.needs_shared
def test_a_stalled_token_endpoint_is_cut_off_by_the_deadline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    params = SearchParams(start=dt.date(2024, 8, 23), end=dt.date(2024, 8, 25), sign="planetary-computer")
    with token_endpoint(monkeypatch, answer="stall") as endpoint:
        monkeypatch.setenv("DEEP_LULC_HTTP_TIMEOUT", "1")
        started = time.monotonic()
        with pytest.raises(
            TransientError,
            match=r"token endpoint http://127\.0\.0\.1:\d+/\S+ (did not answer|failed) "
            r"after retries",
        ):
            search.run(inputs={"stac": str(PC_ITEMS), "aoi": PC_AOI}, output=str(tmp_path / "a.json"), params=params)
        assert time.monotonic() - started < 15
        assert len(endpoint.paths) == 3  # the first try and DEEP_LULC_HTTP_RETRIES=2 retries, each cut off

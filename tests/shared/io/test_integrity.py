"""Trust what is read and what is waited for (issue 20): content checksums on every published file, the
answers of servers held to the request, AOIs that wrap, deadlines, confined hrefs, one writer per output,
and the exit class of every failure."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from rasterio.errors import RasterioIOError

from deep_lulc.shared.errors import BadInputError, DeepLulcError, TransientError
from deep_lulc.shared.io import gdal_env
from deep_lulc.shared.io.publish import STAGING_PREFIX, staged_output
from deep_lulc.shared.products.chips import read_chip, read_chips
from deep_lulc.shared.sources.aoi import load_aoi
from deep_lulc.shared.sources.item_search import SceneQuery, find_items
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict.params import PredictParams
from deep_lulc.stages.synth.params import SynthParams

from ...conftest import BIN, CUBE_PERIOD, TINY, cli_env
from ...http_servers import LoopbackServer, QuietHandler, stac_api_landing
from ...resealing import reseal, reseal_links

START, END = dt.date(TINY.year, 1, 1), dt.date(TINY.year, 12, 31)


def _flip(path: Path, *, offset: int | None = None, seed: int = 0) -> None:
    """XOR one byte of `path` in place (same size): the damage a size check cannot see."""
    data = bytearray(path.read_bytes())
    at = offset if offset is not None else random.Random(seed).randrange(len(data))
    data[at] ^= 4
    path.write_bytes(bytes(data))


def _copy(catalog: str, target: Path) -> Path:
    shutil.copytree(Path(catalog).parent, target)
    return target / "catalog.json"


# -- content checksums -----------------------------------------------------------------------------------


def test_every_published_file_carries_a_checksum(tiny_features: str, tiny_chips: str, tiny_model: str) -> None:
    for catalog in (tiny_features, tiny_chips, tiny_model):
        root = pystac.read_file(catalog)
        assert isinstance(root, pystac.Catalog)
        owners: list[pystac.Item | pystac.Collection] = [*root.get_all_collections(), *root.get_items(recursive=True)]
        files = 0
        for owner in owners:
            for key, asset in owner.assets.items():
                href = asset.get_absolute_href() or ""
                if Path(href).is_file():
                    files += 1
                    assert str(asset.extra_fields.get("file:checksum", "")).startswith("1220"), (owner.id, key)
        assert files > 0, catalog
    manifest = json.loads(next(Path(tiny_features).parent.rglob("*.manifest.json")).read_text())
    assert manifest["format"] == "deep-lulc-zarr-manifest/2"
    assert set(manifest["checksums"]) == set(manifest["sizes"])
    assert all(value.startswith("1e20") for value in manifest["checksums"].values())  # BLAKE3 multihashes


def test_a_flipped_byte_in_a_features_chunk_is_refused_by_predict(
    tiny_features: str, tiny_model: str, tmp_path: Path
) -> None:
    features = _copy(tiny_features, tmp_path / "features")
    chunk = next(p for p in sorted(features.parent.rglob("features/0.0.0.0")))
    _flip(chunk, offset=chunk.stat().st_size // 2)  # inside the compressed stream: it may still decompress
    with pytest.raises(BadInputError, match=r"Zarr store \S+ is (damaged: object features/0\.0\.0\.0 differs|)"):
        predict.run(
            inputs={"model": tiny_model, "features": str(features)},
            output=str(tmp_path / "map"),
            params=PredictParams(device="cpu"),
        )
    assert not (tmp_path / "map" / "catalog.json").exists()


def test_a_flipped_byte_in_a_class_map_is_refused_by_evaluate(
    tiny_features: str, tiny_model: str, tiny_catalog: Path, tmp_path: Path
) -> None:
    mapped = predict.run(
        inputs={"model": tiny_model, "features": tiny_features},
        output=str(tmp_path / "map"),
        params=PredictParams(device="cpu"),
    )
    labels = str(tiny_catalog / "labels.gpkg")
    scored = evaluate.run(
        inputs={"prediction": mapped.catalog, "labels": labels}, output=str(tmp_path / "ok"), params=EvaluateParams()
    )
    assert Path(scored.catalog).is_file()
    classes = next((tmp_path / "map").rglob("classes.tif"))
    _flip(classes, offset=classes.stat().st_size // 2)
    with pytest.raises(BadInputError, match=r"'classes' COG of \S+ \S+classes\.tif is damaged: its content differs"):
        evaluate.run(
            inputs={"prediction": mapped.catalog, "labels": labels},
            output=str(tmp_path / "bad"),
            params=EvaluateParams(),
        )


def test_a_flipped_byte_in_a_chip_is_refused_when_read(tiny_chips: str, tmp_path: Path) -> None:
    chips = _copy(tiny_chips, tmp_path / "chips")
    chip_set = read_chips(str(chips))
    record = chip_set.records[0]
    read_chip(record)  # whole: reads
    _flip(Path(record.image), offset=Path(record.image).stat().st_size - 10)
    with pytest.raises(BadInputError, match=r"chip file \S+ is damaged: its content differs"):
        read_chip(read_chips(str(chips)).records[0])


def test_a_model_config_that_fails_its_checksum_is_refused(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    model = _copy(tiny_model, tmp_path / "model")
    config_path = next(model.parent.rglob("model-config.json"))
    config = json.loads(config_path.read_text())
    values = config["class_values"]
    values[1], values[2] = values[2], values[1]  # swaps two classes' legend: same size, another map
    config_path.write_text(json.dumps(config, indent=2) if "\n" in config_path.read_text() else json.dumps(config))
    with pytest.raises(BadInputError, match=r"model config \S+model-config\.json is not the file `deep-lulc train`"):
        predict.run(
            inputs={"model": str(model), "features": tiny_features},
            output=str(tmp_path / "map"),
            params=PredictParams(device="cpu"),
        )
    reseal(model)  # the same edit, recorded as its writer would: accepted as a (different) model
    from deep_lulc.shared.products.model import read_model

    assert read_model(str(model)).config.class_values == values


# -- what servers return ---------------------------------------------------------------------------------


class _Server(LoopbackServer):
    """An HTTP server on 127.0.0.1 whose behaviour a test sets: a STAC API that ignores every search filter
    (`items`), or a file server that answers 503, stalls, or trickles a byte a second."""

    def __init__(self, mode: str, *, items: list[dict[str, object]] | None = None, body: bytes = b"") -> None:
        server = self

        class Handler(QuietHandler):
            def _search(self) -> None:
                page = {"type": "FeatureCollection", "features": items or [], "links": []}
                self.send(200, json.dumps(page).encode(), "application/geo+json")

            def do_GET(self) -> None:
                if mode == "api":
                    if self.path.startswith("/search"):
                        return self._search()
                    landing = stac_api_landing(server.url, identifier="lax", description="ignores filters")
                    return self.send(200, json.dumps(landing).encode())
                if mode == "503":
                    return self.send(503, b"down")
                if mode == "stall":
                    server.release.wait(60)
                    return None
                if mode == "trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for byte in body:
                        if server.release.wait(1):
                            return None
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                return None

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._search()

        super().__init__(Handler)


def _tiny_items(tiny_catalog: Path) -> list[pystac.Item]:
    root = pystac.read_file(str(tiny_catalog / "catalog.json"))
    assert isinstance(root, pystac.Catalog)
    items = [item for item in root.get_items(recursive=True) if item.collection_id == "sentinel-2-l2a"]
    for item in items:
        item.make_asset_hrefs_absolute()
    return items


def test_api_results_outside_the_request_are_dropped_and_counted(
    tiny_catalog: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items = _tiny_items(tiny_catalog)
    years = sorted({item.datetime.year for item in items if item.datetime})
    other = [item.to_dict() for item in items if item.datetime and item.datetime.year != years[0]]
    wanted = [item for item in items if item.datetime and item.datetime.year == years[0]]
    alien = wanted[0].clone()
    alien.id, alien.collection_id = "landsat-scene", "landsat-c2-l2"
    served = [item.to_dict() for item in wanted] + other + [alien.to_dict()]
    query = SceneQuery(
        source="",
        collection="sentinel-2-l2a",
        aoi=load_aoi(str(tiny_catalog / "aoi-train.geojson")),
        start=dt.date(years[0], 1, 1),
        end=dt.date(years[0], 12, 31),
    )
    with _Server("api", items=served) as api, caplog.at_level(logging.WARNING):
        found = find_items(SceneQuery(**{**query.__dict__, "source": api.url}))
    assert {item.id for item in found} == {item.id for item in wanted}
    assert f"returned {len(other) + 1} items outside the search" in caplog.text
    assert f"{len(other)} outside the dates" in caplog.text
    assert "1 not in collection sentinel-2-l2a" in caplog.text


def test_nan_metadata_is_bad_input(tiny_catalog: Path, tmp_path: Path) -> None:
    items = _tiny_items(tiny_catalog)
    document = items[0].to_dict()
    document["properties"]["eo:cloud_cover"] = float("nan")
    scenes = tmp_path / "items.json"
    scenes.write_text(
        json.dumps(
            {"type": "FeatureCollection", "features": [document], "deep-lulc:search": {"root": str(tiny_catalog)}}
        )
    )
    query = SceneQuery(
        source=str(scenes),
        collection="sentinel-2-l2a",
        aoi=load_aoi("15.2,46.1,15.3,46.3"),
        start=dt.date(2000, 1, 1),
        end=dt.date(2030, 1, 1),
        max_cloud=50,
    )
    with pytest.raises(BadInputError, match=r"eo:cloud_cover nan, not a number"):
        find_items(query)


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        ("179.5,46.2,-179.5,46.4", r"crosses the antimeridian \(west 179\.5 > east -179\.5\)"),
        ("-179.5,46.2,179.5,46.4", r"spans 359\.0 degrees of longitude"),
    ],
)
def test_an_aoi_across_the_antimeridian_is_refused(aoi: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=message):
        load_aoi(aoi)
    wrapping = tmp_path / "wrapping.geojson"  # one polygon drawn across 180 degrees, as a GIS exports it
    ring = [[179.5, 46.2], [-179.5, 46.2], [-179.5, 46.4], [179.5, 46.4], [179.5, 46.2]]
    wrapping.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
                ],
            }
        )
    )
    with pytest.raises(BadInputError, match=r"spans 359\.0 degrees of longitude.*; fix: split the AOI at 180"):
        load_aoi(str(wrapping))


def test_a_grid_over_max_pixels_is_refused_before_the_search(tiny_catalog: Path, tmp_path: Path) -> None:
    inputs = {"stac": str(tmp_path / "never-read.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")}
    with pytest.raises(BadInputError, match=r"the grid would be [\d,]+ x [\d,]+ px .* over --max-pixels 1,000"):
        cube.run(inputs=inputs, output=str(tmp_path / "cube"), params=CubeParams(**CUBE_PERIOD, max_pixels=1000))
    with pytest.raises(BadInputError, match=r"over --max-pixels 250,000,000; fix: check --resolution"):
        cube.run(inputs=inputs, output=str(tmp_path / "cube"), params=CubeParams(**CUBE_PERIOD, resolution=0.001))
    assert not (tmp_path / "cube").exists()


def _catalog_with_edited_scene(tiny_catalog: Path, folder: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    copy = folder / "catalog"
    shutil.copytree(tiny_catalog, copy)
    item_path = next(copy.rglob("S2A_33TWM_20230103_0_L2A.json"))
    document = json.loads(item_path.read_text())
    edit(document)
    item_path.write_text(json.dumps(document))
    reseal_links(copy / "catalog.json")
    return str(copy / "catalog.json")


def _wrong_crs(document: dict[str, Any]) -> None:
    document["properties"]["proj:code"] = "EPSG:32634"


def _shifted_origin(document: dict[str, Any]) -> None:
    document["assets"]["nir"]["proj:transform"][2] += 300.0  # 30 px east


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            _wrong_crs,
            r"asset \w+ of item S2A_33TWM_20230103_0_L2A \(\S+\) is in EPSG:32633 but its item states "
            r"EPSG:32634 \(and 6 more assets\); fix: correct proj:code",
        ),
        (
            _shifted_origin,
            r"asset nir of item S2A_33TWM_20230103_0_L2A \(\S+B08\.tif\) has origin \(520000\.00, "
            r"5117000\.00\) and 10 m pixels but its item states origin \(520300\.00, 5117000\.00\) "
            r"and 10 m pixels \(30\.0 px apart\)",
        ),
    ],
)
def test_a_scene_whose_metadata_contradicts_its_raster_is_refused(
    tiny_catalog: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    stac = _catalog_with_edited_scene(tiny_catalog, tmp_path, edit)
    inputs = {"stac": stac, "aoi": str(tiny_catalog / "aoi-train.geojson")}
    with pytest.raises(BadInputError, match=message):
        cube.run(inputs=inputs, output=str(tmp_path / "cube"), params=CubeParams(**CUBE_PERIOD))
    assert not (tmp_path / "cube").exists()


# -- deadlines -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["stall", "trickle", "503"])
def test_a_cog_server_that_misbehaves_is_given_up_as_transient(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_LULC_HTTP_TIMEOUT", "3")
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    monkeypatch.setenv("GDAL_HTTP_LOW_SPEED_TIME", "2")
    with _Server(mode, body=b"II*\x00" + bytes(4096)) as server:
        started = time.monotonic()
        with (
            pytest.raises(RasterioIOError) as caught,
            rasterio.Env(**gdal_env.read_options([server.url])),
            rasterio.open(server.url + "B04.tif"),
        ):
            pass
        waited = time.monotonic() - started
    assert waited < 20, f"{mode}: waited {waited:.0f} s"
    if mode != "trickle":  # GDAL reports a trickle cut off while reading the header as an unknown format
        assert gdal_env.is_transient(str(caught.value)), str(caught.value)


def test_a_cog_server_answering_503_makes_cube_exit_transient(
    tiny_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")
    with _Server("503") as server:

        def served(document: dict[str, Any]) -> None:
            for key, asset in document["assets"].items():
                if str(asset.get("href", "")).endswith(".tif"):
                    asset["href"] = f"{server.url}{key}.tif"

        stac = _catalog_with_edited_scene(tiny_catalog, tmp_path, served)
        inputs = {"stac": stac, "aoi": str(tiny_catalog / "aoi-train.geojson")}
        with pytest.raises(TransientError, match=r"reading http://127\.0\.0\.1:\d+/\w+\.tif failed: .*503"):
            cube.run(inputs=inputs, output=str(tmp_path / "cube"), params=CubeParams(**CUBE_PERIOD))


@pytest.mark.parametrize("mode", ["stall", "trickle", "503"])
@pytest.mark.parametrize("scheme", ["s3", "http"])
def test_a_misbehaving_object_store_is_cut_off_as_transient(
    scheme: str, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deep_lulc.shared.io import storage

    with _Server(mode, body=b"{}" + b" " * 64) as server:
        monkeypatch.setenv("DEEP_LULC_HTTP_TIMEOUT", "1")
        monkeypatch.setenv("DEEP_LULC_HTTP_DEADLINE", "4")
        monkeypatch.setenv("DEEP_LULC_HTTP_RETRIES", "1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url.rstrip("/"))
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.setenv(name, "testing")
        href = "s3://bucket/catalog.json" if scheme == "s3" else server.url + "catalog.json"
        started = time.monotonic()
        outage = (
            r"(Read timeout on endpoint URL: \S+|did not answer \(a stall past 1 s, or a 429/5xx\)"
            r"|did not finish within 4 s|storage error while reading STAC document \S+: .*)"
            r"; fix: retry"
        )
        with pytest.raises(TransientError, match=outage):
            storage.read_bytes(href, what="STAC document")
    assert time.monotonic() - started < 30


def test_a_stac_api_that_trickles_its_answer_is_cut_off_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte a second never trips a read timeout; DEEP_LULC_HTTP_DEADLINE bounds the whole search."""
    with _Server("api", items=[]) as api:
        original = api.server.RequestHandlerClass

        class Trickling(original):  # type: ignore[misc, valid-type]
            def _search(self) -> None:
                page = b'{"type": "FeatureCollection", "features": [], "links": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/geo+json")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                for byte in page:
                    if api.release.wait(1):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

        api.server.RequestHandlerClass = Trickling
        monkeypatch.setenv("DEEP_LULC_HTTP_TIMEOUT", "2")
        monkeypatch.setenv("DEEP_LULC_HTTP_DEADLINE", "4")
        query = SceneQuery(
            source=api.url, collection="sentinel-2-l2a", aoi=load_aoi("15.2,46.1,15.3,46.3"), start=START, end=END
        )
        started = time.monotonic()
        with pytest.raises(TransientError, match=r"the search of http://127\.0\.0\.1:\d+/ did not finish within 4 s"):
            find_items(query)
        assert time.monotonic() - started < 10


# -- confined hrefs --------------------------------------------------------------------------------------


def _catalog_pointing_at(tiny_catalog: Path, folder: Path, href: str) -> Path:
    copy = folder / "catalog"
    shutil.copytree(tiny_catalog, copy)
    item_path = next(copy.rglob("S2*_L2A.json"))
    document = json.loads(item_path.read_text())
    document["assets"]["red"]["href"] = href
    item_path.write_text(json.dumps(document))
    reseal_links(copy / "catalog.json")  # recorded as a writer would: the href itself must be refused
    return copy / "catalog.json"


@pytest.mark.parametrize("href", ["../../../../../../../../etc/passwd", "/etc/passwd", "file:///etc/passwd"])
def test_an_asset_href_outside_the_catalog_is_refused(tiny_catalog: Path, tmp_path: Path, href: str) -> None:
    catalog = _catalog_pointing_at(tiny_catalog, tmp_path, href)
    query = SceneQuery(
        source=str(catalog),
        collection="sentinel-2-l2a",
        aoi=load_aoi(str(tiny_catalog / "aoi-train.geojson")),
        start=START,
        end=END,
    )
    with pytest.raises(
        BadInputError, match=r"asset red of item \S+: (file://)?/etc/passwd is outside its catalog's folder"
    ):
        find_items(query)


def test_an_allowed_local_root_lets_a_catalog_reference_files_there(
    tiny_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    red = next(tiny_catalog.rglob("B04.tif"))
    shutil.copy(red, elsewhere / "B04.tif")
    catalog = _catalog_pointing_at(tiny_catalog, tmp_path, str(elsewhere / "B04.tif"))
    query = SceneQuery(
        source=str(catalog),
        collection="sentinel-2-l2a",
        aoi=load_aoi(str(tiny_catalog / "aoi-train.geojson")),
        start=START,
        end=END,
    )
    with pytest.raises(BadInputError, match="is outside its catalog's folder"):
        find_items(query)
    monkeypatch.setenv("DEEP_LULC_LOCAL_ROOTS", str(elsewhere))
    assert find_items(query)


def test_a_catalog_whose_links_form_a_cycle_is_bad_input(tmp_path: Path) -> None:
    from deep_lulc.shared.io.stac import items_of, read_stac

    for name, child in (("a", "../b/catalog.json"), ("b", "../a/catalog.json")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "catalog.json").write_text(
            json.dumps(
                {
                    "type": "Catalog",
                    "stac_version": "1.1.0",
                    "id": name,
                    "description": name,
                    "links": [{"rel": "child", "href": child, "type": "application/json"}],
                }
            )
        )
    with pytest.raises(BadInputError, match=r"the child links of \S+a/catalog\.json form a cycle; fix: remove"):
        items_of(read_stac(str(tmp_path / "a" / "catalog.json")))


def test_utf16_json_is_bad_input(tiny_catalog: Path, tmp_path: Path) -> None:
    from deep_lulc.shared.io.stac import read_stac

    path = tmp_path / "catalog.json"
    path.write_bytes((tiny_catalog / "catalog.json").read_text().encode("utf-16"))
    with pytest.raises(BadInputError, match=r"is not UTF-8 text \(it looks like UTF-16\); fix: save it as UTF-8"):
        read_stac(str(path))


def test_a_search_page_cut_short_is_transient(tiny_catalog: Path) -> None:
    with _Server("api", items=[]) as api:
        original = api.server.RequestHandlerClass

        class Truncating(original):  # type: ignore[misc, valid-type]
            def _search(self) -> None:
                self.send(200, b'{"type": "FeatureCollection", "features": [{"type": "Fea', "application/geo+json")

        api.server.RequestHandlerClass = Truncating
        query = SceneQuery(
            source=api.url, collection="sentinel-2-l2a", aoi=load_aoi("15.2,46.1,15.3,46.3"), start=START, end=END
        )
        with pytest.raises(TransientError, match=r"answered a search page that is not STAC JSON \(JSONDecodeError"):
            find_items(query)


def test_a_read_only_output_folder_names_the_folder_not_credentials(tmp_path: Path) -> None:
    from deep_lulc.shared.io.storage import classify_os_error

    error = classify_os_error(PermissionError(13, "Permission denied", str(tmp_path)), action="writing x")
    assert isinstance(error, BadInputError)
    assert "check the folder's permissions" in str(error)
    assert "AWS" not in str(error)


# -- one writer per output, exit classes ----------------------------------------------------------------


def test_a_second_run_into_a_locked_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with staged_output(str(out)) as first:
        (first.path / "catalog.json").write_text("{}")
        with (
            pytest.raises(BadInputError, match=r"another deep-lulc run \(pid \d+\) is writing to \S+/out"),
            staged_output(str(out)),
        ):
            pass
        first.publish()
    with staged_output(str(out)) as again:  # released: the next run gets it
        assert again.path.is_dir()


def test_staging_folders_of_killed_runs_are_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stale = out / f"{STAGING_PREFIX}0123"
    stale.mkdir(parents=True)
    (stale / "half-written.tif").write_bytes(b"II*\x00")
    with staged_output(str(out)) as staged:
        (staged.path / "catalog.json").write_text("{}")
        staged.publish()
    assert sorted(p.name for p in out.iterdir()) == ["catalog.json"]


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def test_a_usage_error_is_one_line_and_exit_2() -> None:
    done = subprocess.run(
        [str(BIN / "deep-lulc"), "cube", "--no-such-option", "1"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == _error_lines(done.stderr)
    assert (
        _error_lines(done.stderr)
        == ["deep-lulc cube: error: No such option: --no-such-option; fix: see `deep-lulc cube --help`"]
        or "No such option: --no-such-option" in done.stderr
    )


def test_sigterm_exits_143_with_a_line_and_leaves_no_staging(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    size = SynthParams().size * 4  # large enough to still be writing when the signal comes
    process = subprocess.Popen(
        [str(BIN / "deep-lulc"), "synth", "--out", str(out), f"--size={size}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    deadline = time.monotonic() + 60
    while not any(out.glob(f"{STAGING_PREFIX}*")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "synth finished before it could be terminated"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert _error_lines(stderr) == [
        "deep-lulc synth: error: terminated by SIGTERM before it finished, nothing published; fix: rerun the same "
        "command (outputs are published whole or not at all)"
    ]
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


# -- a property: damage anywhere is refused or harmless ----------------------------------------------------

TRIALS = int(os.environ.get("DEEP_LULC_FLIP_TRIALS", "8"))  # per product


def _map_bytes(catalog: str) -> bytes:
    with rasterio.open(next(Path(catalog).parent.rglob("classes.tif"))) as dataset:
        return np.asarray(dataset.read(1)).tobytes()


def _scores(catalog: str) -> bytes:
    from deep_lulc.shared.products.evaluation import read_metrics

    metrics = read_metrics(catalog)[1]
    return json.dumps([metrics["confusion_matrix"]["counts"], metrics["per_class"]], sort_keys=True).encode()


@pytest.fixture(scope="module")
def published(
    tiny_features: str, tiny_model: str, tiny_catalog: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    out = tmp_path_factory.mktemp("published")
    mapped = predict.run(
        inputs={"model": tiny_model, "features": tiny_features},
        output=str(out / "map"),
        params=PredictParams(device="cpu"),
    )
    return {
        "features": tiny_features,
        "model": tiny_model,
        "prediction": mapped.catalog,
        "labels": str(tiny_catalog / "labels.gpkg"),
    }


def _reader(product: str, published: dict[str, str]) -> Callable[[str, Path], bytes]:
    """The stage that reads `product` (a copy at the given catalog), as a function returning what it made."""
    if product == "prediction":

        def score(catalog: str, out: Path) -> bytes:
            inputs = {"prediction": catalog, "labels": published["labels"]}
            return _scores(evaluate.run(inputs=inputs, output=str(out), params=EvaluateParams()).catalog)

        return score

    def mapped(catalog: str, out: Path) -> bytes:
        inputs = {"model": published["model"], "features": published["features"], product: catalog}
        return _map_bytes(predict.run(inputs=inputs, output=str(out), params=PredictParams(device="cpu")).catalog)

    return mapped


@pytest.mark.slow
@pytest.mark.parametrize("product", ["features", "model", "prediction"])
def test_random_byte_flips_in_a_published_output_are_refused_or_change_nothing(
    product: str, published: dict[str, str], tmp_path: Path
) -> None:
    """Flip one random byte of one random file of a published output (STAC JSON, Zarr chunks and metadata,
    manifests, COGs, weights, previews) and run the stage that reads it: it either produces exactly what it
    produced from the intact output or exits with bad input (2). Never a different result with exit 0."""
    read = _reader(product, published)
    reference = read(published[product], tmp_path / "reference")
    rng = random.Random(f"{product}-20")
    outcomes: dict[str, int] = {"refused": 0, "same": 0}
    for trial in range(TRIALS):
        copy = _copy(published[product], tmp_path / f"copy-{trial}")
        files = sorted(p for p in copy.parent.rglob("*") if p.is_file() and p.stat().st_size > 0)
        victim = rng.choice(files)
        _flip(victim, offset=rng.randrange(victim.stat().st_size))
        where = f"trial {trial}: {victim.relative_to(copy.parent)}"
        try:
            made = read(str(copy), tmp_path / f"out-{trial}")
        except DeepLulcError as exc:
            failure = (exc.exit_code, f"{where}: {exc}")
            assert failure[0] == 2, failure
            outcomes["refused"] += 1
            continue
        assert made == reference, f"{where} flipped: another result with exit 0"
        outcomes["same"] += 1
    print(f"{product}: {TRIALS} trials, {outcomes['refused']} refused (exit 2), {outcomes['same']} identical results")
    assert sum(outcomes.values()) == TRIALS

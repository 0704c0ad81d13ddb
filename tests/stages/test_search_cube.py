"""`search` and `cube` on the synthetic catalog (static and through a real STAC API) and on real items."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import boto3
import numpy as np
import pyogrio.raw
import pystac
import pytest
import rasterio
import shapely
import xarray as xr

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.sources.aoi import load_aoi
from deep_lulc.shared.sources.item_search import acquisition_key, deduplicate
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.search import stage as search
from deep_lulc.stages.search.params import SearchParams
from deep_lulc.stages.synth.landscape import generate_landscape, scene_grid
from deep_lulc.stages.synth.scenes import SceneContext, plan_acquisitions, render_scene

from ..conftest import BIN, REALDATA, TINY, cli_env, validate_tree
from ..http_servers import LoopbackServer, QuietHandler, stac_api_landing
from ..range_server import range_server

YEAR = {"start": dt.date(TINY.year, 1, 1), "end": dt.date(TINY.year, 12, 31)}


def cube_dataset(result_catalog: str) -> tuple[pystac.Item, xr.Dataset]:
    catalog = pystac.Catalog.from_file(result_catalog)
    item = next(iter(catalog.get_items(recursive=True)))
    return item, xr.open_zarr(item.assets["data"].get_absolute_href(), consolidated=True)


def test_search_static_catalog_writes_item_collection(tiny_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "items.json"
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "search",
            "--stac",
            str(tiny_catalog / "catalog.json"),
            "--aoi",
            str(tiny_catalog / "aoi-predict.geojson"),
            "--start",
            f"{TINY.year}-01-01",
            "--end",
            f"{TINY.year}-12-31",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    collection = pystac.ItemCollection.from_file(str(out))
    assert [item.id for item in collection] == result["items"]
    assert len(collection) == TINY.dates
    summary = [line for line in completed.stderr.splitlines() if " cloud " in line]
    assert len(summary) == TINY.dates  # one line per date
    for item in collection:
        assert Path(item.assets["red"].href).is_file()  # absolute hrefs: the file stands alone


def test_search_output_is_valid_stac(tiny_catalog: Path, tmp_path: Path) -> None:
    """Items keep their collection with an absolute link to it, or lose the field where no link resolves."""
    inputs = {"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")}
    search.run(inputs=inputs, output=str(tmp_path / "items.json"), params=SearchParams(**YEAR))
    listed = list(pystac.ItemCollection.from_file(str(tmp_path / "items.json")))
    assert len(listed) == TINY.dates
    for item in listed:
        item.validate()
        link = item.get_single_link("collection")
        assert item.collection_id == "sentinel-2-l2a"
        assert link is not None
        assert link.href == str(tiny_catalog / "sentinel-2-l2a" / "collection.json")

    document = json.loads((tmp_path / "items.json").read_text())
    for feature in document["features"]:  # a list whose collection link cannot be resolved
        feature["links"] = [{"rel": "collection", "href": "../collection.json", "type": "application/json"}]
    (tmp_path / "relative.json").write_text(json.dumps(document))
    again = {**inputs, "stac": str(tmp_path / "relative.json")}
    search.run(inputs=again, output=str(tmp_path / "again.json"), params=SearchParams(**YEAR))
    relisted = list(pystac.ItemCollection.from_file(str(tmp_path / "again.json")))
    assert [item.id for item in relisted] == [item.id for item in listed]
    for item in relisted:
        item.validate()
        assert item.collection_id is None
        assert item.get_single_link("collection") is None


def test_cube_reads_search_output_over_http_and_s3(
    tiny_catalog: Path, tiny_cube: str, s3_bucket: str, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    search.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(served / "items.json"),
        params=SearchParams(**YEAR),
    )
    boto3.client("s3").upload_file(str(served / "items.json"), s3_bucket, "lists/items.json")
    reference = cube_dataset(tiny_cube)[1]["reflectance"].load()
    with range_server(tmp_path / "log.jsonl", root=served) as server:
        for name, href in (("http", f"{server.url}/items.json"), ("s3", f"s3://{s3_bucket}/lists/items.json")):
            result = cube.run(
                inputs={"stac": href, "aoi": str(tiny_catalog / "aoi-train.geojson")},
                output=str(tmp_path / name),
                params=CubeParams(**YEAR),
            )
            xr.testing.assert_identical(cube_dataset(result.catalog)[1]["reflectance"].load(), reference)
        assert ("GET", "/items.json") in {(entry["method"], entry["path"]) for entry in server.requests()}


def test_search_max_cloud_filters(tiny_catalog: Path, tmp_path: Path) -> None:
    params = SearchParams(**YEAR, max_cloud=1.0)
    result = search.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "clear.json"),
        params=params,
    )
    clouds = [i.properties["eo:cloud_cover"] for i in pystac.ItemCollection.from_file(str(tmp_path / "clear.json"))]
    assert clouds
    assert max(clouds) <= 1.0
    assert len(result.items) < TINY.dates


def test_search_through_a_real_stac_api_pages(stac_api: str, tiny_catalog: Path, tmp_path: Path) -> None:
    static = search.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "static.json"),
        params=SearchParams(**YEAR),
    )
    api = search.run(
        inputs={"stac": stac_api, "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "api.json"),
        params=SearchParams(**YEAR, page_size=2),  # fewer per page than items: paging is exercised
    )
    assert api.items == static.items
    assert len(api.items) == TINY.dates


def test_cube_through_a_real_stac_api_equals_static(
    stac_api: str, tiny_catalog: Path, tiny_cube: str, tmp_path: Path
) -> None:
    result = cube.run(
        inputs={"stac": stac_api, "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "cube"),
        params=CubeParams(**YEAR, page_size=2),
    )
    _, from_api = cube_dataset(result.catalog)
    _, from_static = cube_dataset(tiny_cube)
    xr.testing.assert_identical(from_api["reflectance"].load(), from_static["reflectance"].load())


def test_cube_values_match_the_generator(tiny_catalog: Path, tiny_cube: str) -> None:
    item, dataset = cube_dataset(tiny_cube)
    assert validate_tree(tiny_cube) == 3
    assert dataset["reflectance"].dims == ("time", "band", "y", "x")
    assert list(dataset.band.values) == ["B02", "B03", "B04", "B08", "B11", "B12"]
    assert dataset["reflectance"].dtype == np.float32
    assert len(item.get_links("derived_from")) == TINY.dates
    assert item.properties["proj:code"] == "EPSG:32633"
    assert item.properties["start_datetime"] == f"{TINY.year}-01-01T00:00:00Z"
    assert item.assets["thumbnail"].roles == ["thumbnail"]
    # The synthetic grid and the cube grid share the 10 m lattice, so 10 m bands come through unresampled.
    grid = scene_grid(TINY.size)
    context = SceneContext.build(generate_landscape(grid, seed=TINY.seed), seed=TINY.seed, year=TINY.year)
    scenes = [render_scene(context, a) for a in plan_acquisitions(seed=TINY.seed, year=TINY.year, count=TINY.dates)]
    col0 = round((float(dataset.x[0]) - 5 - grid.affine.c) / 10)
    row0 = round((grid.affine.f - float(dataset.y[0]) - 5) / 10)
    rows, cols = dataset.sizes["y"], dataset.sizes["x"]
    for index, scene in enumerate(scenes):
        expected = scene.reflectance_10m[2][row0 : row0 + rows, col0 : col0 + cols]
        got = dataset["reflectance"].isel(time=index).sel(band="B04").values
        np.testing.assert_allclose(got, expected, atol=0.51e-4, equal_nan=True)
        scl = dataset["scl"].isel(time=index).values
        np.testing.assert_array_equal(
            scl, np.repeat(np.repeat(scene.scl, 2, 0), 2, 1)[row0 : row0 + rows, col0 : col0 + cols]
        )


def test_stackstac_loader_agrees_with_odc_stac(tiny_catalog: Path, tiny_cube: str, tmp_path: Path) -> None:
    result = cube.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "cube"),
        params=CubeParams(**YEAR, loader="stackstac"),
    )
    _, other = cube_dataset(result.catalog)
    _, reference = cube_dataset(tiny_cube)
    for band in ("B02", "B03", "B04", "B08"):  # same lattice: identical
        np.testing.assert_array_equal(
            other["reflectance"].sel(band=band).values, reference["reflectance"].sel(band=band).values
        )
    np.testing.assert_array_equal(other["scl"].values, reference["scl"].values)
    for band in ("B11", "B12"):  # bilinear from 20 m: the two resamplers agree closely away from clouds
        difference = np.abs(other["reflectance"].sel(band=band).values - reference["reflectance"].sel(band=band).values)
        assert np.nanmedian(difference) < 0.005


@pytest.mark.needs_shared
def test_real_l2a_crop_through_cube(tmp_path: Path) -> None:
    crop = REALDATA / "pixels/rio-tiler-pds_S2A_29RKH_20200219_0_L2A_crop"
    result = cube.run(
        inputs={"stac": str(crop / "S2A_29RKH_20200219_0_L2A.local.json"), "aoi": "-11.2,25.0,-10.95,25.25"},
        output=str(tmp_path / "cube"),
        params=CubeParams(start=dt.date(2020, 2, 1), end=dt.date(2020, 2, 29), resolution=100),
    )
    item, dataset = cube_dataset(result.catalog)
    assert item.properties["proj:code"] == "EPSG:32629"
    x0, y0 = float(dataset.x[0]) - 50, float(dataset.y[0]) + 50
    with rasterio.open(crop / "B04.tif") as source:
        col, row = (~source.transform) * (x0, y0)
        assert col == int(col)  # the cube grid sits on the crop's own lattice (origin ...780)
        window = rasterio.windows.Window(int(col), int(row), dataset.sizes["x"], dataset.sizes["y"])
        dn = source.read(1, window=window)
    red = dataset["reflectance"].isel(time=0).sel(band="B04").values
    np.testing.assert_allclose(red, dn * 1e-4 + 0.0, atol=1e-7)  # baseline 02.14: no BOA offset
    with rasterio.open(crop / "SCL.tif") as source:
        col, row = (~source.transform) * (x0, y0)
        scl = source.read(
            1,
            window=rasterio.windows.Window(
                int(col), int(row), dataset.sizes["x"] // 2 + 1, dataset.sizes["y"] // 2 + 1
            ),
        )
    cube_scl = dataset["scl"].isel(time=0).values
    offset = round((col % 1) * 2)
    upsampled = np.repeat(np.repeat(scl, 2, 0), 2, 1)[
        offset : offset + cube_scl.shape[0], offset : offset + cube_scl.shape[1]
    ]
    np.testing.assert_array_equal(cube_scl, upsampled)


def test_aoi_outside_the_data_names_both_extents(tiny_catalog: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"AOI \[0\.0+, 0\.0+, 1\.0+, 1\.0+\] lies outside .*extent \[15\."):
        cube.run(
            inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": "0,0,1,1"},
            output=str(tmp_path / "cube"),
            params=CubeParams(**YEAR),
        )
    assert not (tmp_path / "cube" / "catalog.json").exists()


def test_no_scenes_exits_3(tiny_catalog: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "cube",
            "--stac",
            str(tiny_catalog / "catalog.json"),
            "--aoi",
            str(tiny_catalog / "aoi-train.geojson"),
            "--start",
            "2019-01-01",
            "--end",
            "2019-03-01",
            "--out",
            str(tmp_path / "cube"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 3
    assert "no sentinel-2-l2a scenes intersect AOI" in completed.stderr
    assert "fix: widen the date range" in completed.stderr


def test_unknown_collection_and_missing_aoi(tiny_catalog: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="collection 'landsat' not found"):
        search.run(
            inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
            output=str(tmp_path / "x.json"),
            params=SearchParams(**YEAR, collection="landsat"),
        )
    with pytest.raises(BadInputError, match="AOI file not found"):
        load_aoi(str(tmp_path / "nowhere.geojson"))


@pytest.mark.needs_shared
def test_aoi_in_another_crs_and_without_crs(tmp_path: Path) -> None:
    svn = load_aoi(str(REALDATA / "aoi/eo-learn_slovenia/svn_border.geojson"))  # declared EPSG:32633
    minx, miny, maxx, maxy = svn.bbox
    assert 13.3 < minx < maxx < 16.7
    assert 45.3 < miny < maxy < 47.0
    assert svn.utm_epsg() == 32633
    path = tmp_path / "no-prj.shp"
    polygon = shapely.box(500_000, 5_100_000, 501_000, 5_101_000)
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array([polygon], dtype=object)),
        field_data=[np.array([1], dtype=np.int32)],
        fields=["id"],
        geometry_type="Polygon",
        crs=None,
        driver="ESRI Shapefile",
    )
    assert not path.with_suffix(".prj").exists()
    with pytest.raises(BadInputError, match=r"declares no CRS \(a Shapefile without \.prj\?\)"):
        load_aoi(str(path))


@pytest.mark.needs_shared
def test_duplicate_acquisitions_keep_the_newest_baseline() -> None:
    es = pystac.ItemCollection.from_file(
        str(REALDATA / "stac/earth-search-v1/sentinel-2-c1-l2a/items_T13TDE_2024-03-31_2024-04-22_10-dates.geojson")
    )
    pc = pystac.ItemCollection.from_file(
        str(
            REALDATA
            / "stac/planetary-computer/sentinel-2-l2a"
            / "items_T13TDE_2024-03-26_2024-12-03_100-items.from-geoparquet.geojson"
        )
    )
    es_keys = {acquisition_key(item) for item in es}
    assert len(es_keys) == 10
    twins = [item for item in pc if acquisition_key(item) in es_keys]
    assert len(twins) == 10  # every ES acquisition is listed by PC too, spelled 'Sentinel-2A'
    kept = deduplicate([*es, *twins])
    assert len(kept) == 10
    from deep_lulc.shared.sources.sentinel2 import processing_baseline

    for item in kept:
        group = [i for i in [*es, *twins] if acquisition_key(i) == acquisition_key(item)]
        assert processing_baseline(item) == max(processing_baseline(i) or (0, 0) for i in group)


class _FlakyProxy(LoopbackServer):
    """A loopback HTTP proxy in front of the real STAC API that answers 503 to the first `failures` requests."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.upstream, self.remaining, self.requests = upstream.rstrip("/"), failures, 0
        proxy = self

        class Handler(QuietHandler):
            def _forward(self) -> None:
                proxy.requests += 1
                if proxy.remaining != 0:
                    proxy.remaining -= 1
                    self.send_response(503)
                    self.end_headers()
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command)
                request.add_header("Content-Type", self.headers.get("Content-Type", "application/json"))
                with urllib.request.urlopen(request) as response:
                    payload = response.read().replace(proxy.upstream.encode(), proxy.url.encode())
                    self.send(response.status, payload, response.headers.get("Content-Type", "application/json"))

            do_GET = _forward
            do_POST = _forward

        super().__init__(Handler, path="")


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_LULC_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("DEEP_LULC_HTTP_RETRIES", "3")


@pytest.mark.usefixtures("fast_retries")
def test_api_5xx_then_recovery(stac_api: str, tiny_catalog: Path, tmp_path: Path) -> None:
    with _FlakyProxy(stac_api, failures=2) as proxy:
        result = search.run(
            inputs={"stac": proxy.url, "aoi": str(tiny_catalog / "aoi-train.geojson")},
            output=str(tmp_path / "items.json"),
            params=SearchParams(**YEAR, page_size=4),
        )
    assert len(result.items) == TINY.dates
    assert proxy.requests > 2


def test_api_always_failing_exits_75(stac_api: str, tiny_catalog: Path, tmp_path: Path) -> None:
    with _FlakyProxy(stac_api, failures=-1) as proxy:
        completed = subprocess.run(
            [
                str(BIN / "deep-lulc"),
                "search",
                "--stac",
                proxy.url,
                "--aoi",
                str(tiny_catalog / "aoi-train.geojson"),
                "--start",
                f"{TINY.year}-01-01",
                "--end",
                f"{TINY.year}-12-31",
                "--out",
                str(tmp_path / "x.json"),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=cli_env(DEEP_LULC_HTTP_BACKOFF="0.01", DEEP_LULC_HTTP_RETRIES="2"),
        )
    assert completed.returncode == 75, completed.stderr
    assert "did not answer after retries" in completed.stderr or "failed after retries" in completed.stderr
    assert not (tmp_path / "x.json").exists()


def test_planetary_computer_items_get_the_baseline_offset(tiny_catalog: Path, tmp_path: Path) -> None:
    """PC items state no raster:bands; the cube must still subtract the 04.00+ BOA offset."""
    from deep_lulc.stages.synth import stage as synth

    pc = synth.run(
        inputs={}, output=str(tmp_path / "pc"), params=TINY.model_copy(update={"asset_style": "planetary-computer"})
    )
    es_cube = cube.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "es-cube"),
        params=CubeParams(**YEAR),
    )
    pc_cube = cube.run(
        inputs={"stac": pc.catalog, "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tmp_path / "pc-cube"),
        params=CubeParams(**YEAR),
    )
    es = cube_dataset(es_cube.catalog)[1]["reflectance"].load()
    from_pc = cube_dataset(pc_cube.catalog)[1]["reflectance"].load()
    xr.testing.assert_identical(es, from_pc)


class _StallingApi(LoopbackServer):
    """A STAC API on 127.0.0.1 whose landing page answers and whose /search never does (until the test ends)."""

    def __init__(self) -> None:
        api = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/search"):
                    api.release.wait(60)
                    return
                landing = stac_api_landing(api.url, identifier="stalling", description="stalls")
                self.send(200, json.dumps(landing).encode())

            def do_POST(self) -> None:
                api.release.wait(60)

        super().__init__(Handler)


def test_a_stalled_search_is_cut_off_by_the_timeout_and_exits_75(tiny_catalog: Path, tmp_path: Path) -> None:
    """pystac-client's Client.open resets the session timeout: a /search that never answers must not hang."""
    with _StallingApi() as api:
        started = time.monotonic()
        completed = subprocess.run(
            [
                str(BIN / "deep-lulc"),
                "search",
                "--stac",
                api.url,
                "--aoi",
                str(tiny_catalog / "aoi-train.geojson"),
                "--start",
                f"{TINY.year}-01-01",
                "--end",
                f"{TINY.year}-12-31",
                "--out",
                str(tmp_path / "x.json"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=50,
            env=cli_env(DEEP_LULC_HTTP_TIMEOUT="2", DEEP_LULC_HTTP_BACKOFF="0.01", DEEP_LULC_HTTP_RETRIES="1"),
        )
        elapsed = time.monotonic() - started
    assert completed.returncode == 75, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert "127.0.0.1" in lines[0]
    assert elapsed < 40
    assert not (tmp_path / "x.json").exists()

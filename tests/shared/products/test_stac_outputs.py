"""Stage outputs as STAC tools other than deep-lulc take them: every item inside a collection and with a time,
Zarr assets that xpystac opens from the item, and outputs that load into a real STAC API (pgstac) and are
found again by place and time with pystac-client."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import dask.array as da
import numpy as np
import pystac
import pytest
import rasterio
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
import xpystac.core
from pystac_client import Client
from rasterio.crs import CRS
from shapely.geometry import box, mapping

from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.products import cube, features
from deep_lulc.shared.products.zarr_store import ZarrProduct
from deep_lulc.shared.stage.contract import StageParams, finish_single_item_output

from ...conftest import validate_tree
from ...stac_api_server import loaded_into

Reader = Callable[[str], ZarrProduct]
ZARR_OUTPUTS: list[tuple[str, tuple[str, ...], Reader]] = [
    ("tiny_cube", cube.VARIABLES, cube.open_cube),
    ("tiny_features", features.VARIABLES, features.open_features),
]


def only_item(catalog: str) -> pystac.Item:
    (item,) = pystac.Catalog.from_file(catalog).get_items(recursive=True)
    return item


def open_with_xpystac(asset: pystac.Asset) -> xr.Dataset:
    """`xr.open_dataset(asset, engine="stac")`, xpystac's xarray backend (xarray's annotations take paths only)."""
    opened: xr.Dataset = xr.open_dataset(cast(Any, asset), engine="stac")
    return opened


def epsg(item: pystac.Item) -> CRS:
    return CRS.from_string(str(item.properties["proj:code"]))


@pytest.fixture(scope="module")
def tiny_prediction(tiny_model: str, tiny_features: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    from deep_lulc.stages.predict import stage as predict
    from deep_lulc.stages.predict.params import PredictParams

    out = tmp_path_factory.mktemp("prediction")
    params = PredictParams(tile_size=64, overlap=8, batch_size=4, device="cpu")
    return predict.run(inputs={"model": tiny_model, "features": tiny_features}, output=str(out), params=params).catalog


@pytest.mark.parametrize(("fixture", "stage"), [("tiny_cube", "cube"), ("tiny_features", "features")])
def test_a_stage_output_is_a_catalog_holding_one_collection_of_its_item(
    fixture: str, stage: str, request: pytest.FixtureRequest
) -> None:
    catalog_href: str = request.getfixturevalue(fixture)
    assert validate_tree(catalog_href) == 3  # catalog, collection, item: the official schemas, offline
    root = pystac.read_file(catalog_href)
    assert type(root) is pystac.Catalog
    (collection,) = root.get_children()
    assert isinstance(collection, pystac.Collection)
    (item,) = collection.get_items()
    assert item.id.startswith(f"{stage}-")
    assert collection.id == item.id  # named by what made it: a whole run's outputs share one STAC API
    assert collection.get_self_href() == str(Path(catalog_href).parent / "collection.json")
    assert item.collection_id == collection.id
    assert item.get_collection() is collection
    assert item.get_self_href() == str(Path(catalog_href).parent / item.id / f"{item.id}.json")  # where it was
    start, end = item.common_metadata.start_datetime, item.common_metadata.end_datetime
    assert start is not None
    assert end is not None
    assert start < end
    assert item.datetime == start
    assert collection.extent.temporal.intervals == [[start, end]]
    assert collection.extent.spatial.bboxes == [item.bbox]


def test_an_item_without_a_datetime_gets_its_period_start_and_a_collection(tmp_path: Path) -> None:
    """As evaluate builds its item: a period, `datetime` null, no collection; any single-item stage's tail."""
    footprint = box(15.26, 46.19, 15.27, 46.20)
    period = {"start_datetime": "2024-01-01T00:00:00Z", "end_datetime": "2024-12-31T23:59:59Z"}
    item = pystac.Item("scored", mapping(footprint), list(footprint.bounds), None, properties=dict(period))
    with staged_output(str(tmp_path / "out")) as staged:
        href = finish_single_item_output(
            staged,
            item,
            catalog_id="evaluation",
            description="test",
            stage="evaluate",
            inputs={},
            params=StageParams(),
        )
    assert validate_tree(href) == 3
    written = json.loads((tmp_path / "out" / "scored" / "scored.json").read_text())
    assert written["collection"] == "evaluation"
    assert written["properties"] == {**period, "datetime": "2024-01-01T00:00:00Z"}
    assert {"rel": "collection", "href": "../collection.json", "type": "application/json"} in [
        {k: link[k] for k in ("rel", "href", "type")} for link in written["links"]
    ]


def test_an_item_at_one_moment_keeps_it(tmp_path: Path) -> None:
    moment = dt.datetime(2024, 5, 1, 10, 30, tzinfo=dt.UTC)
    item = pystac.Item("model", None, None, moment, properties={})
    with staged_output(str(tmp_path / "out")) as staged:
        href = finish_single_item_output(
            staged, item, catalog_id="model", description="test", stage="train", inputs={}, params=StageParams()
        )
    assert validate_tree(href) == 3
    collection = pystac.Collection.from_file(str(tmp_path / "out" / "collection.json"))
    assert collection.extent.temporal.intervals == [[moment, moment]]
    assert collection.extent.spatial.bboxes == [[-180.0, -90.0, 180.0, 90.0]]
    assert only_item(href).datetime == moment


@pytest.mark.parametrize(("fixture", "variables", "reader"), ZARR_OUTPUTS)
def test_zarr_assets_open_with_xpystac_from_the_item(
    fixture: str, variables: tuple[str, ...], reader: Reader, request: pytest.FixtureRequest
) -> None:
    catalog_href: str = request.getfixturevalue(fixture)
    item = only_item(catalog_href)
    assert item.assets["data"].href.startswith("./")  # relative in the file: the folder can move
    item.make_asset_hrefs_absolute()  # as pystac resolves it against the item
    opened = open_with_xpystac(item.assets["data"])
    same = xpystac.core.to_xarray(item.assets["data"])
    ours = reader(catalog_href).dataset
    assert opened.rio.crs == epsg(item)
    assert opened.rio.transform() == ours.rio.transform()
    for name in variables:
        assert isinstance(opened[name].data, da.Array)  # lazy, as `xarray:open_kwargs` asks
        np.testing.assert_array_equal(opened[name].values, ours[name].values)
        xr.testing.assert_identical(same[name], opened[name])


@pytest.mark.parametrize(("fixture", "variables", "reader"), ZARR_OUTPUTS)
def test_gdal_zarr_driver_sees_the_grid_of_stage_outputs(
    fixture: str, variables: tuple[str, ...], reader: Reader, request: pytest.FixtureRequest
) -> None:
    item = only_item(request.getfixturevalue(fixture))
    store = item.assets["data"].get_absolute_href()
    for name in variables:
        with rasterio.open(f'ZARR:"{store}":/{name}') as dataset:
            assert dataset.crs == epsg(item)
            assert list(dataset.transform)[:6] == item.properties["proj:transform"]
            assert list(dataset.shape) == item.properties["proj:shape"]


@pytest.mark.slow
def test_outputs_load_into_a_stac_api_and_are_found_by_bbox_and_time(
    stac_api: str, tiny_cube: str, tiny_features: str, tiny_prediction: str
) -> None:
    # Each output's collection is named by what made it (as its one item is): ids of their own in one API.
    items = {only_item(href).id: only_item(href) for href in (tiny_cube, tiny_features, tiny_prediction)}
    outputs = list(items)
    with (
        loaded_into(stac_api, tiny_cube, [outputs[0]]),
        loaded_into(stac_api, tiny_features, [outputs[1]]),
        loaded_into(stac_api, tiny_prediction, [outputs[2]]),
    ):
        client = Client.open(stac_api)
        assert {c.id for c in client.get_collections()} == {"sentinel-2-l2a", *outputs}
        for name, item in items.items():
            served = client.get_collection(name)
            assert served is not None
            assert served.extent.temporal.intervals[0] == [
                item.common_metadata.start_datetime,
                item.common_metadata.end_datetime,
            ]
        bbox = items[outputs[2]].bbox
        assert bbox is not None
        # A month inside the period, not its start: the API matches each item on its whole start..end range.
        found = client.search(collections=list(outputs), bbox=bbox, datetime="2023-06-01/2023-06-30")
        by_collection = {str(hit.collection_id): hit for hit in found.items()}
        assert {key: hit.id for key, hit in by_collection.items()} == {key: i.id for key, i in items.items()}
        for key, hit in by_collection.items():
            assert hit.datetime is not None
            assert hit.datetime == items[key].datetime == items[key].common_metadata.start_datetime
        assert not list(client.search(collections=list(outputs), bbox=bbox, datetime="2022-01-01/2022-12-31").items())
        elsewhere = [bbox[2] + 0.1, bbox[3] + 0.1, bbox[2] + 0.2, bbox[3] + 0.2]
        assert not list(client.search(collections=list(outputs), bbox=elsewhere, datetime="2023").items())
        # As the API serves it (absolute hrefs), the features asset opens with xpystac without any fix-up.
        features = outputs[1]
        served_features = open_with_xpystac(by_collection[features].assets["data"])
        assert served_features.rio.crs == epsg(items[features])
        assert served_features.sizes["y"] == items[features].properties["proj:shape"][0]
    assert [c.id for c in Client.open(stac_api).get_collections()] == ["sentinel-2-l2a"]  # left as it was

"""A whole demo run loads into one STAC API: every id unique, every object found back, every extent covering.

Users load all of a run's outputs into one pgstac (stac-fastapi-pgstac) to browse and search them. There,
collection ids are global and item ids unique per collection, so outputs named by their stage alone
(`prediction` twice, two models' maps of the same features under one item id) collide or shadow each other,
and a collection whose extent misses its items is skipped by clients that filter collections by extent.
The test walks the run's folder generically (every catalog.json it finds), not a fixed layout.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pystac
import pytest
from pystac_client import Client

from ..stac_api_server import loaded_into, stac_api_server

pytestmark = pytest.mark.slow

MODEL_PROPERTY = "deep-lulc:model"  # what class_map writes on every prediction: the model item's id
WHOLE_MAP_PROPERTY = "deep-lulc:prediction_id"  # the whole map's id; a tile's item id adds `-tile-<id>`


def _collections_by_catalog(root: Path) -> dict[Path, list[pystac.Collection]]:
    """Every catalog.json under `root` that holds collections, with them (a catalog of catalogs holds none)."""
    found: dict[Path, list[pystac.Collection]] = {}
    for path in sorted(root.rglob("catalog.json")):
        catalog = pystac.Catalog.from_file(str(path))
        collections = [child for child in catalog.get_children() if isinstance(child, pystac.Collection)]
        if collections:
            found[path] = collections
    return found


def _covers(collection: pystac.Collection, item: pystac.Item) -> list[str]:
    """What of `item` lies outside `collection`'s extent (nothing: an empty list)."""
    problems = []
    west, south, east, north = collection.extent.spatial.bboxes[0][:4]
    bbox = item.bbox or []
    if bbox and not (west <= bbox[0] and south <= bbox[1] and bbox[2] <= east and bbox[3] <= north):
        problems.append(f"{item.id} bbox {bbox} outside {collection.id} {[west, south, east, north]}")
    start, end = collection.extent.temporal.intervals[0]
    moments = [item.datetime, item.common_metadata.start_datetime, item.common_metadata.end_datetime]
    for moment in (m for m in moments if m is not None):
        if (start is not None and moment < start) or (end is not None and moment > end):
            problems.append(f"{item.id} at {moment} outside {collection.id} [{start}, {end}]")
    return problems


@pytest.fixture(scope="module")
def demo_collections(tiny_demo: tuple[Path, dict[str, object]]) -> dict[Path, list[pystac.Collection]]:
    return _collections_by_catalog(tiny_demo[0])


@pytest.fixture(scope="module")
def demo_api(
    tiny_demo: tuple[Path, dict[str, object]], demo_collections: dict[Path, list[pystac.Collection]]
) -> Iterator[tuple[str, dict[Path, list[pystac.Collection]]]]:
    """A fresh STAC API holding every collection and item of the tiny demo run; yields its URL and what it
    loaded (a fresh one: the session's `stac_api` already holds a `sentinel-2-l2a`, as the run's synth does)."""
    root, by_catalog = tiny_demo[0], demo_collections
    collections = [c for found in by_catalog.values() for c in found]
    ids = Counter(c.id for c in collections)
    # Checked before loading: pgstac would refuse the second collection of an id with a bare database error.
    assert [i for i, n in ids.items() if n > 1] == [], "collection ids collide across the run"
    for collection in collections:
        item_ids = Counter(item.id for item in collection.get_items(recursive=True))
        assert [i for i, n in item_ids.items() if n > 1] == [], f"item ids collide in {collection.id}"
    with stac_api_server(root / "catalog.json", []) as api, ExitStack() as loaded:
        for path, found in by_catalog.items():
            loaded.enter_context(loaded_into(api.url, path, [c.id for c in found]))
        yield api.url, by_catalog


@pytest.mark.services
def test_a_whole_demo_run_loads_into_one_stac_api_and_every_object_is_found_back(
    demo_api: tuple[str, dict[Path, list[pystac.Collection]]],
) -> None:
    url, by_catalog = demo_api
    collections = [c for found in by_catalog.values() for c in found]
    items = {c.id: list(c.get_items(recursive=True)) for c in collections}
    total = sum(len(found) for found in items.values())
    print(f"demo run in one STAC API: {len(collections)} collections, {total} items, {len(by_catalog)} catalogs")
    assert len(collections) >= 20, "synth's two, and cube, features, model, prediction, ... of every step"
    assert len({c.id for c in collections}) == len(collections)

    client = Client.open(url)
    served = {c.id for c in client.get_collections()}
    assert served == {c.id for c in collections}
    for collection in collections:
        served_collection = client.get_collection(collection.id)
        assert served_collection is not None
        assert served_collection.id == collection.id
        expected = {item.id for item in items[collection.id]}
        assert len(expected) == len(items[collection.id])
        search = client.search(collections=[collection.id], ids=sorted(expected), limit=1000)
        found = [item.id for item in search.items()]
        assert sorted(found) == sorted(expected), collection.id


@pytest.mark.services
def test_a_search_by_model_returns_that_models_predictions_only(
    demo_api: tuple[str, dict[Path, list[pystac.Collection]]],
) -> None:
    url, by_catalog = demo_api
    by_model: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for collection in (c for found in by_catalog.values() for c in found):
        for item in collection.get_items(recursive=True):
            if MODEL_PROPERTY in item.properties:
                by_model[str(item.properties[MODEL_PROPERTY])].add((collection.id, item.id))
    assert len(by_model) == 2, "the demo maps with the deep model and with LightGBM"
    (one, mine), (_, theirs) = sorted(by_model.items())
    assert {item_id for _, item_id in mine}.isdisjoint({item_id for _, item_id in theirs}), "models share item ids"

    client = Client.open(url)
    cql2 = {"op": "=", "args": [{"property": MODEL_PROPERTY}, one]}
    answered = list(client.search(filter=cql2, filter_lang="cql2-json", limit=100).items())
    assert {(item.collection_id, item.id) for item in answered} == mine

    # The user's case: June of the first period returns each model's map of it once, under an id of its own
    # (the demo maps tile by tile, so each map's tiles come back too, each under its own id).
    starts = [item.common_metadata.start_datetime for item in answered]
    june = f"{min(s for s in starts if s is not None):%Y}-06"
    collections = sorted({collection for collection, _ in mine | theirs})
    found = list(client.search(collections=collections, datetime=june, limit=100).items())
    assert len({item.id for item in found}) == len(found), [item.id for item in found]
    maps = [item.id for item in found if item.properties.get(WHOLE_MAP_PROPERTY) == item.id]
    assert len(maps) == 2, f"one whole map per model in {june}: {maps}"
    assert {str(item.properties[MODEL_PROPERTY]) for item in found if item.id in maps} == set(by_model)


def test_every_collection_of_the_run_covers_its_items(demo_collections: dict[Path, list[pystac.Collection]]) -> None:
    by_catalog = demo_collections
    problems = [
        problem
        for collection in (c for found in by_catalog.values() for c in found)
        for item in collection.get_items(recursive=True)
        for problem in _covers(collection, item)
    ]
    assert problems == []

"""The loopback STAC API the `search` and `cube` tests rely on is real and serves the static catalog faithfully.

If this server drifted from the static catalog (lost items, relative hrefs, no paging), stage tests built on it
would pass or fail for the wrong reasons; these tests pin what they may assume.
"""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac
import pytest
import rasterio
from pystac_client import Client

COLLECTION = "sentinel-2-l2a"
# One calendar year of the tiny catalog: half its acquisitions, so the range filter has something to drop.
START, END = datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)
PAGE = 2


@pytest.fixture(scope="module")
def static_collection(tiny_catalog: Path) -> pystac.Collection:
    catalog = pystac.Catalog.from_file(str(tiny_catalog / "catalog.json"))
    collection = catalog.get_child(COLLECTION)
    assert isinstance(collection, pystac.Collection)
    return collection


def _in_range(item: pystac.Item) -> bool:
    assert item.datetime is not None
    return START <= item.datetime <= END


def test_root_answers_over_http_on_loopback(stac_api: str) -> None:
    assert urlsplit(stac_api).hostname == "127.0.0.1"
    with urllib.request.urlopen(f"{stac_api}/conformance", timeout=10) as response:
        assert response.status == 200
        body = response.read().decode()
    assert "item-search" in body


def test_lists_the_collection(stac_api: str, static_collection: pystac.Collection) -> None:
    client = Client.open(stac_api)
    ids = [collection.id for collection in client.get_collections()]
    assert ids == [COLLECTION]
    served = client.get_collection(COLLECTION)
    assert served is not None
    assert served.extent.spatial.bboxes[0] == pytest.approx(static_collection.extent.spatial.bboxes[0])


def test_search_returns_exactly_the_range_over_several_pages(
    stac_api: str, static_collection: pystac.Collection
) -> None:
    expected = sorted(item.id for item in static_collection.get_items() if _in_range(item))
    assert 2 * PAGE < len(expected) < len(list(static_collection.get_items()))

    search = Client.open(stac_api).search(
        collections=[COLLECTION],
        bbox=static_collection.extent.spatial.bboxes[0],
        datetime=[START, END],
        limit=PAGE,
    )
    pages = list(search.pages())
    # Each page is one HTTP request that follows the previous page's `next` token.
    assert len(pages) == -(-len(expected) // PAGE)
    assert all(len(page.items) <= PAGE for page in pages)
    found = [item.id for page in pages for item in page.items]
    assert len(found) == len(set(found)), "an item came back on two pages"
    assert sorted(found) == expected


def test_far_away_bbox_finds_nothing(stac_api: str) -> None:
    search = Client.open(stac_api).search(collections=[COLLECTION], bbox=[150.0, -35.0, 151.0, -34.0], limit=PAGE)
    assert list(search.items()) == []


def test_asset_hrefs_are_file_uris_of_the_cogs(stac_api: str, static_collection: pystac.Collection) -> None:
    items = list(Client.open(stac_api).search(collections=[COLLECTION], limit=5).items())
    assert len(items) == len(list(static_collection.get_items()))
    hrefs: list[str] = [asset.href for item in items for asset in item.assets.values()]
    assert all(href.startswith("file:///") for href in hrefs), hrefs
    assert all(Path(href.removeprefix("file://")).is_file() for href in hrefs), hrefs
    first = items[0].assets["blue"]
    with rasterio.open(first.href.removeprefix("file://")) as dataset:
        shape: Any = first.extra_fields["proj:shape"]
        assert [dataset.height, dataset.width] == list(shape)

"""The scene list: `search`'s output, an ItemCollection file that `cube --stac` reads back.

Items are stored self-contained (absolute asset hrefs, no root/parent links), so the file can move to object
storage and still resolve; the search request that made it travels in the collection's `deep-lulc:search`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pystac

from deep_lulc.shared import storage
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.publish import write_file_atomically
from deep_lulc.shared.version import __version__

SEARCH_FIELD = "deep-lulc:search"


def is_scene_list(document: Mapping[str, Any]) -> bool:
    return document.get("type") == "FeatureCollection"


def write_scene_list(items: Sequence[pystac.Item], output: str, *, params: Mapping[str, Any]) -> str:
    """Write `items` as an ItemCollection at `output` (atomically) and return its href."""
    collection = pystac.ItemCollection(
        [item.clone() for item in items],
        extra_fields={SEARCH_FIELD: {"params": dict(params), "version": __version__}},
    )
    for item in collection.items:
        self_href = item.get_self_href()
        item.make_asset_hrefs_absolute()
        item.clear_links("root")
        item.clear_links("parent")
        item.clear_links("collection")
        if self_href:
            item.set_self_href(self_href)
    document = collection.to_dict(transform_hrefs=False)
    return write_file_atomically(output, (json.dumps(document, indent=1) + "\n").encode())


def read_scene_list(document: Mapping[str, Any], href: str) -> list[pystac.Item]:
    """The items of an ItemCollection document read from `href`; bad input when it is not one."""
    try:
        collection = pystac.ItemCollection.from_dict(dict(document), preserve_dict=False)
    except (pystac.STACError, KeyError, ValueError, TypeError) as exc:
        raise BadInputError(
            f"{storage.redact(href)} is a FeatureCollection but not a STAC ItemCollection: {exc}",
            fix="pass the file written by `deep-lulc search --out`, or a STAC catalog or API",
        ) from exc
    for item in collection.items:
        for asset in item.assets.values():
            if not storage.is_remote(asset.href) and not asset.href.startswith("/"):
                raise BadInputError(
                    f"item {item.id} in {storage.redact(href)} has a relative asset href {asset.href!r}",
                    fix="write the scene list with `deep-lulc search`, which makes asset hrefs absolute",
                )
    return list(collection.items)

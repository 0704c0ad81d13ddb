"""The scene list: `search`'s output, an ItemCollection file that `cube --stac` reads back.

Items are stored self-contained (absolute asset hrefs, no root/parent links), so the file can move to object
storage and still resolve; the search request that made it travels in the collection's `deep-lulc:search`.
An item keeps its `collection` with an absolute link to it where the source had one, and drops the field
otherwise: STAC requires the link wherever the field is set.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pystac
from pystac.utils import is_absolute_href, make_absolute_href

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.stac import confine_assets
from deep_lulc.shared.version import __version__

SEARCH_FIELD = "deep-lulc:search"
ROOT_FIELD = "root"  # in SEARCH_FIELD: the folder of the searched catalog, where local asset hrefs may point


def is_scene_list(document: Mapping[str, Any]) -> bool:
    return document.get("type") == "FeatureCollection"


def write_scene_list(
    items: Sequence[pystac.Item], output: str, *, params: Mapping[str, Any], source: str | None = None
) -> str:
    """Write `items` as an ItemCollection at `output` (atomically) and return its href. `source`: the STAC
    source searched, whose folder (when local) is where the list's local asset hrefs may point."""
    search: dict[str, Any] = {"params": dict(params), "version": __version__}
    root = storage.folder_of(source) if source is not None else None
    if root is not None:
        search[ROOT_FIELD] = root
    collection = pystac.ItemCollection([item.clone() for item in items], extra_fields={SEARCH_FIELD: search})
    for item in collection.items:
        self_href = item.get_self_href()
        collection_href = _absolute_collection_href(item)
        item.make_asset_hrefs_absolute()
        item.clear_links("root")
        item.clear_links("parent")
        item.clear_links("collection")
        if self_href:
            item.set_self_href(self_href)
        if collection_href is not None:
            item.add_link(pystac.Link(pystac.RelType.COLLECTION, collection_href, media_type=pystac.MediaType.JSON))
        else:  # STAC: an item naming its collection must link to it
            item.collection_id = None
    document = collection.to_dict(transform_hrefs=False)
    return write_file_atomically(output, (json.dumps(document, indent=1) + "\n").encode())


def _absolute_collection_href(item: pystac.Item) -> str | None:
    """Where the item's collection lives, as an absolute href, when the source says (None otherwise: a
    relative link resolves only against the item's own absolute self href, never the working directory)."""
    link = item.get_single_link(pystac.RelType.COLLECTION)
    href = link.get_href(transform_href=False) if link is not None else None
    if not href:
        return None
    if is_absolute_href(href):
        return href
    base = item.get_self_href()
    return make_absolute_href(href, base) if base and is_absolute_href(base) else None


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
    recorded = document.get(SEARCH_FIELD)
    root = recorded.get(ROOT_FIELD) if isinstance(recorded, Mapping) else None
    confine_assets(collection.items, root=str(root) if root else storage.folder_of(href))
    return list(collection.items)

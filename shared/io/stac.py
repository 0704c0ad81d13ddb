"""STAC reading and writing conventions shared by the stages.

Every item a stage writes records the software that made it (processing extension) and `derived_from`
links to its sources, so a STAC browser can walk a map back to the scenes it came from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.layout import CustomLayoutStrategy, HrefLayoutStrategy
from pystac.stac_io import DefaultStacIO
from pystac.utils import make_absolute_href

from deep_lulc.shared.errors import BadInputError, DeepLulcError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.integrity import file_checksum, seal_assets
from deep_lulc.shared.version import SOFTWARE_NAME, __version__


def iso(moment: dt.datetime | np.datetime64) -> str:
    """UTC ISO 8601 with a Z, from a datetime or a numpy datetime64 (xarray time coordinates)."""
    if isinstance(moment, np.datetime64):
        return str(np.datetime_as_string(moment, unit="s")) + "Z"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The one extension without a pystac class; every other schema URI comes from `pystac.extensions`.
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


class FsspecStacIO(DefaultStacIO):
    """pystac I/O over fsspec, so catalogs on s3:// and http(s):// resolve their relative links."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[str, str] = {}  # absolute href -> file:checksum its parent's link recorded

    def remember_links(self, document: Mapping[str, Any], href: str) -> None:
        """Note the checksums `document`'s child and item links record, to hold those documents to them."""
        links = document.get("links")
        for link in links if isinstance(links, list) else []:
            if isinstance(link, dict) and isinstance(link.get("href"), str) and link.get(LINK_CHECKSUM):
                target = storage.normalize_href(make_absolute_href(link["href"], href))
                self.expected[target] = str(link[LINK_CHECKSUM])

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source.href if isinstance(source, pystac.Link) else source)
        raw = storage.read_bytes(href, what="STAC document")
        expected = self.expected.get(storage.normalize_href(href))
        if expected is not None and file_checksum(raw) != expected:
            raise BadInputError(
                f"STAC document {storage.redact(href)} is not the one its parent catalog recorded (its content "
                "differs from the link's file:checksum)",
                fix="copy the whole output folder again, or re-run the stage that wrote it",
            )
        text = storage.utf8(raw, href=href, what="STAC document")
        with contextlib.suppress(ValueError):
            self.remember_links(json.loads(text), href)
        return text

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        href = str(dest.href if isinstance(dest, pystac.Link) else dest)
        if storage.scheme_of(href) == "file":
            path = Path(storage.normalize_href(href))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(txt, encoding="utf-8")
            return
        fs, path_in_fs = storage.filesystem_for(href)
        with fs.open(path_in_fs, "w") as handle:
            handle.write(txt)


def stac_io() -> FsspecStacIO:
    return FsspecStacIO()


LINK_CHECKSUM = "file:checksum"  # on child and item links: the linked document's sha2-256 multihash


def unwrapped(exc: pystac.STACError) -> Exception:
    """pystac wraps whatever failed while it resolved a link in a STACError: a domain error keeps its class."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, DeepLulcError):
        cause = cause.__cause__
    if isinstance(cause, DeepLulcError):
        return cause
    return BadInputError(f"a STAC document cannot be read: {exc}", fix="check the catalog's links and documents")


def read_stac(href: str, document: dict[str, Any] | None = None) -> pystac.STACObject:
    """Read a catalog, collection or item from any supported href (`document`: its JSON, already read)."""
    href = storage.normalize_href(href)
    if document is None:
        document = storage.read_json(href, what="STAC document")
    if "type" not in document or "stac_version" not in document:
        raise BadInputError(
            f"{storage.redact(href)} is JSON but not a STAC object (no 'type'/'stac_version')",
            fix="point at a STAC catalog.json, collection.json or item JSON",
        )
    io = stac_io()
    io.remember_links(document, href)
    try:
        return pystac.read_dict(document, href=href, stac_io=io)
    except (pystac.STACError, KeyError, ValueError, TypeError) as exc:
        raise BadInputError(
            f"{storage.redact(href)} is not a valid STAC object: {exc}", fix="check the document against the STAC spec"
        ) from exc


def items_of(obj: pystac.STACObject) -> list[pystac.Item]:
    """All items below a catalog or collection, or the item itself; every local asset href confined to the
    folder of `obj` (see `confine_assets`)."""
    if isinstance(obj, pystac.Item):
        items = [obj]
    elif isinstance(obj, pystac.Catalog):
        try:
            items = list(obj.get_items(recursive=True))
        except pystac.STACError as exc:
            raise unwrapped(exc) from exc
        except RecursionError as exc:  # pystac walks child links depth first, a cycle for ever
            raise BadInputError(
                f"the child links of {storage.redact(obj.get_self_href() or obj.id)} form a cycle",
                fix="remove the child link that points back to a catalog above it",
            ) from exc
    else:
        raise BadInputError(
            f"unsupported STAC object type {type(obj).__name__}", fix="pass a catalog, collection or item"
        )
    self_href = obj.get_self_href()
    if self_href:
        confine_assets(items, root=storage.folder_of(self_href))
    return items


def confine_assets(items: Iterable[pystac.Item], *, root: str | None) -> None:
    """Bad input naming the first asset href that is a local file outside `root` (`storage.confine`)."""
    for item in items:
        for key, asset in item.assets.items():
            href = asset.get_absolute_href() or asset.href
            storage.confine(href, root=root, what=f"asset {key} of item {item.id}:")


WHOLE_EARTH = (-180.0, -90.0, 180.0, 90.0)  # the extent of an item without a bbox (STAC requires one)
COLLECTION_NAME = "collection.json"


def _collection_beside_its_catalog(collection: pystac.Collection, parent_dir: str, is_root: bool) -> str:
    return posixpath.join(parent_dir, COLLECTION_NAME)


# A catalog holding one collection, with the collection's file beside catalog.json: items stay in
# `<id>/<id>.json` under the output folder, where they were before outputs had a collection.
ONE_FOLDER_LAYOUT = CustomLayoutStrategy(collection_func=_collection_beside_its_catalog)


def period_item(
    identifier: str,
    geometry: Mapping[str, Any],
    bbox: Sequence[float],
    period: tuple[str, str],
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """An item over a period, as every product of a time series is: `start_datetime` and `end_datetime` say
    what it covers, and `datetime` is the period's start (see `set_nominal_datetime`)."""
    item = pystac.Item(
        id=identifier,
        geometry=dict(geometry),
        bbox=list(bbox),
        datetime=None,
        properties={"start_datetime": period[0], "end_datetime": period[1], **(properties or {})},
    )
    set_nominal_datetime(item)
    return item


def set_nominal_datetime(item: pystac.Item) -> None:
    """Give an item over a period without a `datetime` its period's start as one.

    Loaders that sort or stack items by `datetime` (stackstac, xarray time coordinates) get NaT from a null,
    and odc-stac already falls back to `start_datetime`: the start keeps them in agreement and keeps two
    consecutive periods apart. Searches are unaffected: STAC APIs (pgstac) match an item that has a start and
    an end on that whole range, whatever its `datetime`.
    """
    start = item.common_metadata.start_datetime
    if item.datetime is None and start is not None:
        item.datetime = start


# Ids: a whole run's outputs load into one STAC API, where collection ids are global and item ids unique per
# collection. Every product names its items and collections by what made them (`stac_id`), never by the stage
# alone. pgstac takes any text, but ids end up in URL paths and folder names: no slashes, and short.
ID_LIMIT = 120
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def stac_id(*parts: str) -> str:
    """`parts` joined by `-` as an item or collection id: characters that URL paths and file names mind become
    `-`; an id over `ID_LIMIT` keeps its start and ends in a digest of the whole, so it stays unique and the
    same on every rerun."""
    joined = _ID_UNSAFE.sub("-", "-".join(part for part in parts if part)).strip("-")
    if len(joined) <= ID_LIMIT:
        return joined
    digest = hashlib.sha256(joined.encode()).hexdigest()[:8]
    return f"{joined[: ID_LIMIT - len(digest) - 1].rstrip('-')}-{digest}"


def stem(identifier: str, prefix: str) -> str:
    """An id without its product prefix (`model-resnet18-...` -> `resnet18-...`), to name what derives from it."""
    return identifier.removeprefix(f"{prefix}-")


def covering_extent(items: Sequence[pystac.Item]) -> pystac.Extent:
    """The extent of a collection of `items`: the union of their bboxes and their earliest start to latest end
    (pystac's `Extent.from_items`); the whole earth for items without a bbox (a model at one moment)."""
    extent = pystac.Extent.from_items(items)
    if not all(item.bbox for item in items):
        extent.spatial = pystac.SpatialExtent([list(WHOLE_EARTH)])
    return extent


def cover_items(collection: pystac.Collection) -> None:
    """Set the extent of a collection that holds items to theirs (`covering_extent`). `save_self_contained`
    calls it on every collection it saves, so no writer can publish a collection whose extent misses its items
    (STAC APIs answer spatial and temporal collection queries from the extent alone)."""
    items = list(collection.get_items())
    if items:
        collection.extent = covering_extent(items)


def single_item_collection(item: pystac.Item, *, collection_id: str, description: str) -> pystac.Collection:
    """The collection a stage publishes its item in: the item's footprint and period as the extent, so the
    output loads into a STAC API (which holds items only inside collections) as it is."""
    return pystac.Collection(
        id=collection_id,
        title=description,
        description=description,
        extent=covering_extent([item]),
        license="other",
        providers=[pystac.Provider(SOFTWARE_NAME, roles=[pystac.ProviderRole.PROCESSOR])],
    )


def stamp_provenance(item: pystac.Item, *, derived_from: Iterable[str] = ()) -> None:
    """Add `processing:software` and one `derived_from` link per source href."""
    if PROCESSING_EXTENSION not in item.stac_extensions:
        item.stac_extensions.append(PROCESSING_EXTENSION)
    item.properties["processing:software"] = {SOFTWARE_NAME: __version__}
    for href in derived_from:
        item.add_link(pystac.Link("derived_from", storage.redact(href), media_type=pystac.MediaType.JSON))


def utc(value: dt.date | dt.datetime) -> dt.datetime:
    """A timezone-aware UTC datetime; STAC requires RFC 3339 with a zone."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def save_self_contained(catalog: pystac.Catalog, directory: Path, *, layout: HrefLayoutStrategy | None = None) -> Path:
    """Write a catalog whose links and asset hrefs are all relative, so the folder can be moved or uploaded
    (`layout`: where children go; pystac's best practice by default). Every asset file under `directory`
    gets its `file:size` and `file:checksum` here, so no writer can publish a file its readers cannot verify, and
    every collection the extent of its items (`cover_items`)."""
    for collection in [catalog, *catalog.get_all_collections()]:
        if isinstance(collection, pystac.Collection):
            cover_items(collection)
    catalog.normalize_hrefs(str(directory), strategy=layout)
    catalog.make_all_asset_hrefs_relative()
    seal_assets([*catalog.get_all_collections(), *catalog.get_items(recursive=True)], directory.resolve())
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=stac_io())
    seal_links(catalog)
    return directory / "catalog.json"


def seal_links(catalog: pystac.Catalog) -> None:
    """Record in every child and item link of the saved `catalog` the checksum of the document it points at,
    deepest catalogs first (a parent's checksum covers the links of its children written before it).

    Item JSON holds what assets cannot: normalisation statistics, grids, legends. Readers hold each document
    to the link they reached it by (`FsspecStacIO.read_text`); the root, the user's entry point, has none.
    """
    for parent, _, _ in reversed(list(catalog.walk())):
        path = Path(storage.normalize_href(parent.get_self_href() or ""))
        document = json.loads(path.read_text(encoding="utf-8"))
        for link in document.get("links", []):
            if link.get("rel") in (pystac.RelType.CHILD, pystac.RelType.ITEM):
                target = Path(storage.normalize_href(make_absolute_href(link["href"], str(path))))
                link[LINK_CHECKSUM] = file_checksum(target.read_bytes())
        path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def iso_utc(moment: dt.datetime) -> str:
    """A STAC datetime string: UTC, with `Z` rather than `+00:00`."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")

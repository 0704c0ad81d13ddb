"""STAC reading and writing conventions shared by the stages.

Every item a stage writes records the software that made it (processing extension) and `derived_from`
links to its sources, so a STAC browser can walk a map back to the scenes it came from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.layout import CustomLayoutStrategy, HrefLayoutStrategy
from pystac.stac_io import DefaultStacIO

from deep_lulc.shared import storage
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.version import SOFTWARE_NAME, __version__


def iso(moment: dt.datetime | np.datetime64) -> str:
    """UTC ISO 8601 with a Z, from a datetime or a numpy datetime64 (xarray time coordinates)."""
    if isinstance(moment, np.datetime64):
        return str(np.datetime_as_string(moment, unit="s")) + "Z"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The one extension without a pystac class; every other schema URI comes from `pystac.extensions`.
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
SHA2_256 = "1220"  # multihash prefix: sha2-256, 32 bytes


def file_checksum(data: bytes) -> str:
    """`file:checksum` of `data`: a sha2-256 multihash, hex-encoded, as the file extension specifies."""
    return SHA2_256 + hashlib.sha256(data).hexdigest()


class FsspecStacIO(DefaultStacIO):
    """pystac I/O over fsspec, so catalogs on s3:// and http(s):// resolve their relative links."""

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source.href if isinstance(source, pystac.Link) else source)
        return storage.read_bytes(href, what="STAC document").decode("utf-8")

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
    try:
        return pystac.read_dict(document, href=href, stac_io=stac_io())
    except (pystac.STACError, KeyError, ValueError, TypeError) as exc:
        raise BadInputError(
            f"{storage.redact(href)} is not a valid STAC object: {exc}", fix="check the document against the STAC spec"
        ) from exc


def items_of(obj: pystac.STACObject) -> list[pystac.Item]:
    """All items below a catalog or collection, or the item itself."""
    if isinstance(obj, pystac.Item):
        return [obj]
    if isinstance(obj, pystac.Catalog):
        return list(obj.get_items(recursive=True))
    raise BadInputError(f"unsupported STAC object type {type(obj).__name__}", fix="pass a catalog, collection or item")


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


def single_item_collection(item: pystac.Item, *, collection_id: str, description: str) -> pystac.Collection:
    """The collection a stage publishes its item in: the item's footprint and period as the extent, so the
    output loads into a STAC API (which holds items only inside collections) as it is."""
    start = item.common_metadata.start_datetime or item.datetime
    end = item.common_metadata.end_datetime or item.datetime
    return pystac.Collection(
        id=collection_id,
        title=description,
        description=description,
        extent=pystac.Extent(
            pystac.SpatialExtent([list(item.bbox or WHOLE_EARTH)]), pystac.TemporalExtent([[start, end]])
        ),
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
    (`layout`: where children go; pystac's best practice by default)."""
    catalog.normalize_hrefs(str(directory), strategy=layout)
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=stac_io())
    return directory / "catalog.json"

"""STAC reading and writing conventions shared by the stages.

Every item a stage writes records the software that made it (processing extension) and `derived_from`
links to its sources, so a STAC browser can walk a map back to the scenes it came from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pystac
from pystac.stac_io import DefaultStacIO

from deep_lulc.shared import storage
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.version import SOFTWARE_NAME, __version__

DATACUBE_EXTENSION = "https://stac-extensions.github.io/datacube/v2.2.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"


def iso(moment: dt.datetime | np.datetime64) -> str:
    """UTC ISO 8601 with a Z, from a datetime or a numpy datetime64 (xarray time coordinates)."""
    if isinstance(moment, np.datetime64):
        return str(np.datetime_as_string(moment, unit="s")) + "Z"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


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


def read_stac(href: str) -> pystac.STACObject:
    """Read a catalog, collection or item from any supported href."""
    href = storage.normalize_href(href)
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


def save_self_contained(catalog: pystac.Catalog, directory: Path) -> Path:
    """Write a catalog whose links and asset hrefs are all relative, so the folder can be moved or uploaded."""
    catalog.normalize_hrefs(str(directory))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=stac_io())
    return directory / "catalog.json"

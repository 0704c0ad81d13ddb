"""Finding Sentinel-2 items for an AOI and a time range, in a STAC API or a static catalog.

Both kinds of source give the same answer: items of one collection that intersect the AOI within the
dates, under the cloud limit, with duplicate listings of one acquisition collapsed (the newest
processing baseline wins), sorted by time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import shapely
from shapely.geometry import shape
from urllib3 import Retry

from deep_lulc.shared.errors import BadInputError, NothingToDoError, TransientError
from deep_lulc.shared.geo.geometry import format_bbox
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.shared.sources.scene_list import is_scene_list, read_scene_list

log = logging.getLogger(__name__)

RETRY_STATUS = (429, 500, 502, 503, 504)
FIX_METADATA = "fix or remove that item in the STAC source (its metadata decides which pixels are read)"


@dataclass(frozen=True)
class SceneQuery:
    source: str
    collection: str
    aoi: Aoi
    start: dt.date
    end: dt.date
    max_cloud: float | None = None
    page_size: int = 100

    @property
    def datetime_range(self) -> str:
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59Z"

    def contains_time(self, moment: dt.datetime) -> bool:
        return self.start <= moment.astimezone(dt.UTC).date() <= self.end


def retry_policy() -> Retry:
    """Retries with exponential backoff on 429/5xx and connection errors.

    `DEEP_LULC_HTTP_RETRIES` and `DEEP_LULC_HTTP_BACKOFF` tune it (operators behind flaky proxies; tests).
    """
    return Retry(
        total=int(os.environ.get("DEEP_LULC_HTTP_RETRIES", "5")),
        backoff_factor=float(os.environ.get("DEEP_LULC_HTTP_BACKOFF", "1.0")),
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,  # STAC searches are POSTs, and idempotent
        raise_on_status=True,
    )


http_timeout = storage.http_timeout  # the one deadline of every remote call


def is_stac_api(root: dict[str, object]) -> bool:
    links = root.get("links")
    return isinstance(links, list) and any(isinstance(link, dict) and link.get("rel") == "search" for link in links)


def find_items(query: SceneQuery) -> list[pystac.Item]:
    """Search `query.source`; raises NothingToDoError when nothing matches and BadInputError when the AOI
    lies outside the collection."""
    href = storage.normalize_href(query.source)
    if storage.is_remote(href) and storage.scheme_of(href) in ("http", "https"):
        root = _read_root_over_http(href)
        if is_stac_api(root):
            found = storage.within_deadline(
                lambda: _search_api(href, query), what=f"the search of {storage.redact(href)}"
            )
        else:
            found = _search_static(href, query, dict(root))
    else:
        found = _search_static(href, query)
    items = deduplicate(found)
    if not items:
        raise NothingToDoError(
            f"no {query.collection} scenes intersect AOI {format_bbox(query.aoi.bbox)} between "
            f"{query.start} and {query.end}"
            + (f" under {query.max_cloud}% cloud" if query.max_cloud is not None else ""),
            fix="widen the date range, raise --max-cloud, or check the collection id",
        )
    return items


def _read_root_over_http(href: str) -> dict[str, object]:
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry_policy())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        response = storage.within_deadline(
            lambda: session.get(href, timeout=http_timeout()), what=f"STAC source {storage.redact(href)}"
        )
    except requests.exceptions.RequestException as exc:
        raise TransientError(
            f"STAC source {storage.redact(href)} did not answer after retries ({type(exc).__name__})",
            fix="retry later; check the URL and the service status",
        ) from exc
    if response.status_code == 404:
        raise BadInputError(f"STAC source not found: {storage.redact(href)}", fix="check the URL")
    if response.status_code >= 400:
        raise BadInputError(
            f"STAC source {storage.redact(href)} answered HTTP {response.status_code}", fix="check the URL and access"
        )
    try:
        document = response.json()
    except ValueError as exc:
        raise BadInputError(f"{storage.redact(href)} did not return JSON", fix="point at a STAC API root") from exc
    if not isinstance(document, dict):
        raise BadInputError(f"{storage.redact(href)} is not a STAC document", fix="point at a STAC API root")
    return document


def _search_api(href: str, query: SceneQuery) -> list[pystac.Item]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO

    stac_io = StacApiIO(timeout=http_timeout(), max_retries=retry_policy())
    try:
        # pystac-client 0.9 resets the StacApiIO's timeout to `timeout` (None: wait forever) when it opens
        client = Client.open(href, stac_io=stac_io, timeout=http_timeout())
        search = client.search(
            collections=[query.collection],
            intersects=shapely.geometry.mapping(query.aoi.geometry),
            datetime=query.datetime_range,
            limit=query.page_size,
            query={"eo:cloud_cover": {"lte": query.max_cloud}} if query.max_cloud is not None else None,
        )
        items = list(search.items())
    except (ValueError, KeyError, TypeError, pystac.STACError) as exc:  # a page cut short, or not STAC JSON
        raise TransientError(
            f"STAC API {storage.redact(href)} answered a search page that is not STAC JSON "
            f"({type(exc).__name__}: {str(exc)[:120]})",
            fix="retry later; if it persists, the API is broken: check the service or use another",
        ) from exc
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        if status is None or status in RETRY_STATUS:
            raise TransientError(
                f"STAC API {storage.redact(href)} failed after retries: {str(exc)[:200]}",
                fix="retry later; check the service status",
            ) from exc
        raise BadInputError(
            f"STAC API {storage.redact(href)} rejected the search (HTTP {status}): {str(exc)[:200]}",
            fix="check --collection, the AOI and the dates",
        ) from exc
    if not items:
        _check_aoi_against_api_collection(client, query)
    # A server may ignore a filter it does not support (the query extension), or any filter by a bug: its
    # answer is held to the request as a static catalog's items are, and what it should not have sent is said.
    rejected: Counter[str] = Counter()
    matches = _matching(items, query, collection=query.collection, rejected=rejected, strict_collection=True)
    if rejected:
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(rejected.items()))
        log.warning(
            "STAC API %s returned %d items outside the search, dropped: %s",
            storage.redact(href),
            sum(rejected.values()),
            reasons,
        )
    return matches


def _check_aoi_against_api_collection(client: object, query: SceneQuery) -> None:
    try:
        collection = client.get_collection(query.collection)  # type: ignore[attr-defined]
    except Exception as exc:
        raise BadInputError(
            f"collection {query.collection!r} not found in the STAC API",
            fix="list the collections of the API and pass one with --collection",
        ) from exc
    _check_aoi_within(collection.extent.spatial.bboxes, query)


def _check_aoi_within(bboxes: Iterable[list[float]], query: SceneQuery) -> None:
    extents = [list(b) for b in bboxes]
    if extents and not any(shapely.box(*b[:2], *b[-2:]).intersects(query.aoi.geometry) for b in extents):
        raise BadInputError(
            f"AOI {format_bbox(query.aoi.bbox)} lies outside collection {query.collection} "
            f"(extent {format_bbox(extents[0])})",
            fix="choose an AOI inside the data, or another STAC source",
        )


def _search_static(href: str, query: SceneQuery, document: dict[str, Any] | None = None) -> list[pystac.Item]:
    """`document`: the root already fetched (over HTTP, to tell an API from a static catalog)."""
    if document is None:
        document = storage.read_json(href, what="STAC document")
    if is_scene_list(document):
        return _matching(read_scene_list(document, href), query, collection=query.collection)
    root = read_stac(href, document)
    if isinstance(root, pystac.Collection) and root.id == query.collection:
        collections: list[pystac.Collection] = [root]
    elif isinstance(root, pystac.Catalog):
        collections = [c for c in root.get_all_collections() if c.id == query.collection]
    else:
        collections = []
    if isinstance(root, pystac.Item):
        candidates = [root]
    elif not collections:
        raise BadInputError(
            f"collection {query.collection!r} not found in {storage.redact(href)}",
            fix="pass the id of a collection of that catalog with --collection",
        )
    else:
        candidates = [item for collection in collections for item in items_of(collection)]
    matches = _matching(candidates, query)
    if not matches and collections:
        _check_aoi_within(
            [list(b) for c in collections for b in c.extent.spatial.bboxes]
            + [list(shape(i.geometry).bounds) for i in candidates if i.geometry is not None],
            query,
        )
    return matches


def _matching(
    items: Iterable[pystac.Item],
    query: SceneQuery,
    *,
    collection: str | None = None,
    rejected: Counter[str] | None = None,
    strict_collection: bool = False,
) -> list[pystac.Item]:
    """The items inside the query's time range, cloud limit and AOI (and collection, for a scene list whose
    items name theirs; `strict_collection`: an item naming none is outside it too). `rejected` counts the
    others by reason."""
    rejected = Counter() if rejected is None else rejected
    matches = []
    for item in items:
        if item.datetime is None or item.geometry is None:
            rejected["without datetime or geometry"] += 1
        elif (
            collection is not None
            and item.collection_id != collection
            and (strict_collection or item.collection_id is not None)
        ):
            rejected[f"not in collection {collection}"] += 1
        elif not query.contains_time(item.datetime):
            rejected["outside the dates"] += 1
        elif not _cloud_ok(item, query.max_cloud):
            rejected["over the cloud limit"] += 1
        elif not _geometry_of(item).intersects(query.aoi.geometry):
            rejected["outside the AOI"] += 1
        else:
            matches.append(item)
    return matches


def _geometry_of(item: pystac.Item) -> shapely.Geometry:
    try:
        geometry = shape(item.geometry)
    except (ValueError, TypeError, AttributeError, KeyError, shapely.errors.GEOSException) as exc:
        raise BadInputError(f"item {item.id} has an unreadable geometry ({exc})", fix=FIX_METADATA) from exc
    coordinates = shapely.get_coordinates(geometry)
    if geometry.is_empty or not np.isfinite(coordinates).all():
        raise BadInputError(f"item {item.id} has an empty geometry or one with NaN coordinates", fix=FIX_METADATA)
    return geometry


def _cloud_ok(item: pystac.Item, max_cloud: float | None) -> bool:
    cloud = item.properties.get("eo:cloud_cover")
    if cloud is not None:
        try:
            value = float(cloud)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise BadInputError(f"item {item.id} has eo:cloud_cover {cloud!r}, not a number", fix=FIX_METADATA)
    else:
        value = None
    return max_cloud is None or value is None or value <= max_cloud


def acquisition_key(item: pystac.Item) -> tuple[str, str, str]:
    """Platform, UTC day and MGRS tile: the same for every listing of one acquisition."""
    props = item.properties
    tile = props.get("s2:mgrs_tile") or props.get("grid:code") or ""
    if not tile and "mgrs:utm_zone" in props:
        tile = f"{props['mgrs:utm_zone']}{props.get('mgrs:latitude_band', '')}{props.get('mgrs:grid_square', '')}"
    if not tile:
        match = re.search(r"_T?(\d{2}[A-Z]{3})_", item.id)
        tile = match.group(1) if match else item.id
    tile = str(tile).replace("MGRS-", "").lstrip("T")
    day = item.datetime.astimezone(dt.UTC).date().isoformat() if item.datetime else ""
    return sentinel2.normalized_platform(item), day, tile


def deduplicate(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """One item per acquisition; the newest processing baseline (then the newest generation) wins."""
    best: dict[tuple[str, str, str], pystac.Item] = {}
    for item in items:
        key = acquisition_key(item)
        kept = best.get(key)
        if kept is None or _rank(item) > _rank(kept):
            if kept is not None:
                log.info("duplicate acquisition %s: keeping %s over %s", key, item.id, kept.id)
            best[key] = item
        else:
            log.info("duplicate acquisition %s: keeping %s over %s", key, kept.id, item.id)
    return sorted(best.values(), key=lambda i: (i.datetime or dt.datetime.min.replace(tzinfo=dt.UTC), i.id))


def _rank(item: pystac.Item) -> tuple[tuple[int, int], str]:
    baseline = sentinel2.processing_baseline(item) or (0, 0)
    generated = str(item.properties.get("s2:generation_time") or item.properties.get("updated") or "")
    return baseline, generated

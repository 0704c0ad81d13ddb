"""Items whose main asset is a Zarr store (cube, features): finding them and opening the store lazily."""

from __future__ import annotations

import pystac
import xarray as xr

from deep_lulc.shared import storage
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.stac import items_of, read_stac

ZARR_MEDIA_TYPE = "application/vnd+zarr"


def zarr_asset(path: str, *, title: str) -> pystac.Asset:
    """The `data` asset of a cube or features item."""
    return pystac.Asset(path, title=title, media_type=ZARR_MEDIA_TYPE, roles=["data"])


def zarr_item(href: str, *, variables: tuple[str, ...], made_by: str) -> tuple[pystac.Item, xr.Dataset]:
    """The first item under `href` with a Zarr `data` asset holding `variables`, and that store."""
    candidates = [
        item
        for item in items_of(read_stac(href))
        if "data" in item.assets and item.assets["data"].media_type == ZARR_MEDIA_TYPE
    ]
    fix = f"pass the catalog.json written by `deep-lulc {made_by}`"
    if not candidates:
        raise BadInputError(f"{storage.redact(href)} holds no item with a Zarr 'data' asset", fix=fix)
    item = candidates[0]
    store = item.assets["data"].get_absolute_href() or ""
    try:
        if storage.scheme_of(store) == "s3":
            dataset = xr.open_zarr(store, consolidated=True, storage_options=storage.s3_storage_options())
        else:
            dataset = xr.open_zarr(storage.normalize_href(store), consolidated=True)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise BadInputError(f"Zarr store {storage.redact(store)} cannot be opened: {exc}", fix=fix) from exc
    missing = [name for name in variables if name not in dataset]
    if missing:
        raise BadInputError(f"{storage.redact(store)} lacks variables {missing}", fix=fix)
    return item, dataset

"""The features: bands and indices interpolated onto a regular date grid (time, channel, y, x), with the
count of valid observations per pixel (y, x), in a Zarr store on the cube's grid, and their item.

Written window by window (each window fills whole chunks of both variables), read by chips, train's map
validation and predict; only this module knows the layout and the item's own fields (`FeaturesRecord`).

Windows are written with zarr directly, not through xarray's `to_zarr(region=...)`: the region write
re-reads and checks the store's metadata per call, which cost about as much as encoding the window.
Chunks are Blosc LZ4 at level 1: on interpolated float32 the higher levels gained under 2 % of size for
2.5x the encoding time (measured), and encoding is the largest part of the stage after the read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numcodecs  # type: ignore[import-untyped]
import numpy as np
import pystac
import xarray as xr
import zarr
from pystac.extensions.datacube import DatacubeExtension

from deep_lulc.shared.geo.grids import GeoBox, write_projection
from deep_lulc.shared.io.stac import period_item, stac_id, stem
from deep_lulc.shared.products import zarr_store
from deep_lulc.shared.products.cube import bands_dimension, data_variable, temporal_dimension
from deep_lulc.shared.products.zarr_store import Manifest, ZarrLocation

ZARR_NAME = "features.zarr"
DATA_TITLE = "Interpolated features"
VARIABLES = ("features", "valid_count")
MADE_BY = "features"
COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)
_STEP_DAYS = "deep-lulc:step_days"
_FRAMES_KEPT = "deep-lulc:frames_kept"
_FRAMES_DROPPED = "deep-lulc:frames_dropped"
_PIXELS_NEVER_VALID = "deep-lulc:pixels_never_valid"


@dataclass(frozen=True)
class FeaturesRecord:
    """What the features item records of how its dates were filled: the grid's step, how many cube frames
    were used and dropped, and how many AOI pixels had no usable observation at all (their features are
    NaN), so a thin result is visible from the item alone."""

    step_days: int
    frames_kept: int
    frames_dropped: int
    pixels_never_valid: int

    def properties(self) -> dict[str, Any]:
        return {
            _STEP_DAYS: self.step_days,
            _FRAMES_KEPT: self.frames_kept,
            _FRAMES_DROPPED: self.frames_dropped,
            _PIXELS_NEVER_VALID: self.pixels_never_valid,
        }


def features_record(item: pystac.Item) -> FeaturesRecord | None:
    """The record `features_item` wrote; None for an item without one (features written by other code)."""
    keys = (_STEP_DAYS, _FRAMES_KEPT, _FRAMES_DROPPED, _PIXELS_NEVER_VALID)
    if any(item.properties.get(key) is None for key in keys):
        return None
    step_days, kept, dropped, never_valid = (int(item.properties[key]) for key in keys)
    return FeaturesRecord(step_days, kept, dropped, never_valid)


class Features(zarr_store.ZarrProduct):
    """A features item and its verified store (unpacks as `item, dataset`)."""

    @property
    def record(self) -> FeaturesRecord | None:
        return features_record(self.item)


def create_store(
    path: Path,
    *,
    grid: GeoBox,
    times: np.ndarray,
    channels: Sequence[str],
    y: np.ndarray,
    x: np.ndarray,
    block: int,
    attrs: Mapping[str, Any],
) -> None:
    """Metadata and coordinates of the store; `write_window` fills in the data, `finish_store` seals it."""
    shape = (len(times), len(channels), len(y), len(x))
    template = xr.Dataset(
        {
            "features": (
                ("time", "channel", "y", "x"),
                da.empty(shape, chunks=(-1, -1, block, block), dtype=np.float32),
            ),
            "valid_count": (("y", "x"), da.zeros(shape[2:], chunks=(block, block), dtype=np.int16)),
        },
        coords={"time": times, "channel": list(channels), "y": y, "x": x},
        attrs=dict(attrs),
    )
    template = zarr_store.georeferenced(template, grid)
    encoding = {
        "features": {"chunks": (len(times), len(channels), block, block), "compressors": (COMPRESSOR,)},
        "valid_count": {"chunks": (block, block), "compressors": (COMPRESSOR,)},
    }
    zarr_store.write_dataset(template, path, encoding=encoding, compute=False)


def write_window(
    store: ZarrLocation, region: Mapping[str, slice], *, features: np.ndarray, valid_count: np.ndarray
) -> None:
    """One window's features (time, channel, y, x) and valid counts (y, x) into its region of the store.

    All-fill chunks are stored too, as every writer of the project does (see `zarr_store`)."""
    rows, cols = region["y"], region["x"]
    group = zarr.open_group(store.href, mode="r+", zarr_format=2, storage_options=store.storage_options or None)
    _array(group, "features")[:, :, rows, cols] = np.asarray(features, dtype=np.float32)
    _array(group, "valid_count")[rows, cols] = np.asarray(valid_count).astype(np.int16)


def _array(group: zarr.Group, name: str) -> zarr.Array[Any]:
    array = group[name]
    if not isinstance(array, zarr.Array):
        raise TypeError(f"{name} of the features store is a group, not an array")
    return array.with_config({"write_empty_chunks": True})


def finish_store(path: Path) -> Manifest:
    """After the last window: the manifest readers verify the store against."""
    return zarr_store.record_manifest(path)


def _datacube(item: pystac.Item, cube_item: pystac.Item, times: np.ndarray, channels: Sequence[str]) -> None:
    """The cube's spatial dimensions as the cube recorded them, the date grid and the channels."""
    dimensions = dict(DatacubeExtension.ext(cube_item).dimensions)
    dimensions.pop("band", None)
    dimensions["time"] = temporal_dimension(times)
    dimensions["channel"] = bands_dimension(channels)
    DatacubeExtension.ext(item, add_if_missing=True).apply(
        dimensions=dimensions,
        variables={
            "features": data_variable(
                ("time", "channel", "y", "x"), "Bands and indices, linearly interpolated over cloud-free observations"
            ),
            "valid_count": data_variable(
                ("y", "x"),
                "Valid observations per pixel among the frames used (0: no data, features NaN)",
                auxiliary=True,
            ),
        },
    )


def features_id(cube_id: str) -> str:
    """`features-<the cube's id without cube->`: features of another cube (AOI, period, tile) get another id."""
    return stac_id("features", stem(cube_id, "cube"))


def features_item(
    identifier: str,
    *,
    cube_item: pystac.Item,
    grid: GeoBox,
    times: np.ndarray,
    channels: Sequence[str],
    store: Path,
    manifest: Manifest,
    record: FeaturesRecord | None = None,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """The features item: the cube's footprint and period, its grid, datacube fields, how it was made
    (`record`), the store and its manifest; `properties` are further fields, for fixtures standing in for a
    stage's output."""
    period = (cube_item.properties["start_datetime"], cube_item.properties["end_datetime"])
    item = period_item(identifier, cube_item.geometry or {}, cube_item.bbox or [], period)
    write_projection(item, grid)
    _datacube(item, cube_item, times, channels)
    if record is not None:
        item.properties.update(record.properties())
    item.properties.update(properties or {})
    zarr_store.add_store_assets(item, store, title=DATA_TITLE, manifest=manifest)
    return item


def open_features(href: str, *, lazy: bool = True) -> Features:
    """The features item behind `href` (catalog or item) and its store, checked against its manifest
    (`lazy=False`: without dask, as window-by-window readers want it)."""
    item, dataset = zarr_store.open_item_store(href, variables=VARIABLES, made_by=MADE_BY, lazy=lazy)
    return Features(item, dataset)


def open_store(href: str, *, lazy: bool = True) -> xr.Dataset:
    """A features store by its own href (a worker or a reader handed the asset, not the item)."""
    return zarr_store.open_store(href, made_by=MADE_BY, variables=VARIABLES, lazy=lazy)

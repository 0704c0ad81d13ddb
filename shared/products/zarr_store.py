"""The one way the project writes and opens Zarr stores, and the manifest that makes a damaged store bad input.

Zarr reads an absent chunk as fill values, so a store that lost objects in a partial copy or upload opens
fine and yields NaN or zeros without a word. Every store a stage writes therefore gets a manifest beside
it (`<name>.zarr.manifest.json`: the byte size of every object, recorded after the last chunk), and
opening compares the store's listing with it, naming the first missing or truncated keys. Writers store
every chunk, all-fill ones included, so a key absent from the listing always means a lost object.

The manifest also records a content hash of every object (a BLAKE3 multihash, see `integrity`), and stores
are opened through a zarr store that hashes each object as it is read (`VerifyingStore`): a chunk whose bytes
changed in place still decompresses to plausible numbers, so only its content hash tells it from the one the
writer stored. A chunk is verified when it is first read, not all at open, so a stage reading a few windows of
a large store pays for those alone, and a chunk read again by an overlapping window is not hashed again.

Stores written before manifests existed still open, with a warning that nothing was verified; stores whose
manifest records sizes only (format 1) are checked for sizes, with a warning that content was not.

Stores are georeferenced the CF way: a `spatial_ref` grid-mapping coordinate (CRS and GeoTransform) that
every data variable names in `grid_mapping` and `coordinates`, so `xr.open_zarr(store).rio.crs` and GDAL's
Zarr driver (3.9 and later) find the CRS. GDAL 3.4 to 3.8 (Debian 12's 3.6, and the QGIS built on it) read
no CF grid mapping; the store's `pam.aux.xml` gives them the CRS (see `write_gdal_sidecar`).

Items describe their `data` asset with `xarray:open_kwargs`, so xpystac
(`xr.open_dataset(item.assets["data"], engine="stac")`) opens it as this module does.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, cast
from xml.etree import ElementTree

import pyproj
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from pyproj.enums import WktVersion
from pystac.extensions.file import FileExtension
from pystac.extensions.xarray_assets import OPEN_KWARGS_PROP
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import FsspecStore, LocalStore, WrapperStore

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox_of
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.integrity import checksum_matches, chunk_checksum, file_checksum
from deep_lulc.shared.io.stac import items_of, read_stac

ZARR_MEDIA_TYPE = "application/vnd+zarr"
DATA_ASSET = "data"
MANIFEST_ASSET = "manifest"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "deep-lulc-zarr-manifest/2"  # sizes and content multihashes of every object
SIZES_ONLY_FORMAT = "deep-lulc-zarr-manifest/1"  # stores written before content hashes: sizes only
FIX_STORE = "re-run the stage that wrote the store, or copy the whole store again"
SHOWN_KEYS = 3  # keys an error names before "and N more"
GRID_MAPPING = "spatial_ref"  # rioxarray's default name, which GDAL and CF readers take as given
GDAL_PAM = "pam.aux.xml"  # GDAL's sidecar of a Zarr store (its root folder): the CRS for GDAL before 3.9
# How xarray opens a store, for readers that take it from the item (xpystac): Zarr v2, consolidated, lazy.
OPEN_KWARGS: dict[str, Any] = {"engine": "zarr", "consolidated": True, "zarr_format": 2, "chunks": {}}
log = logging.getLogger(__name__)


# Objects already verified in this process, by (store, key, checksum): overlapping windows read the same
# chunk several times, and a file does not change under a running stage (its writer published it whole).
_verified_objects: set[tuple[str, str, str]] = set()
_verified_lock = threading.Lock()


class VerifyingStore(WrapperStore[Store]):
    """A read-only zarr store that hashes every whole object it returns against the manifest's record.

    Bad input naming the store and the key on a mismatch: zarr and dask pass the exception through to the
    stage as it is. Ranged reads (not made for the compressed v2 chunks the stages write) pass unverified.
    """

    def __init__(self, store: Store, checksums: Mapping[str, str], *, name: str) -> None:
        super().__init__(store)
        self.checksums = checksums
        self.name = name

    def _with_store(self, store: Store) -> VerifyingStore:
        return VerifyingStore(store, self.checksums, name=self.name)

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        buffer = await self._store.get(key, prototype, byte_range)
        if buffer is None or byte_range is not None:
            return buffer
        expected = self.checksums.get(key)
        if expected is None:
            raise BadInputError(
                f"Zarr store {self.name} holds object {key}, which its manifest does not list", fix=FIX_STORE
            )
        seen = (self.name, key, expected)
        with _verified_lock:
            if seen in _verified_objects:
                return buffer
        if not checksum_matches(buffer.as_numpy_array().data, expected):
            raise BadInputError(
                f"Zarr store {self.name} is damaged: object {key} differs from the checksum its manifest recorded",
                fix=FIX_STORE,
            )
        with _verified_lock:
            _verified_objects.add(seen)
        return buffer


# Content hashes of the stores `open_store` verified in this process, by href, for `ZarrLocation.at`: workers
# re-open a store window by window, and each re-opening must verify what it reads as the first opening did.
_recorded_checksums: dict[str, Mapping[str, str]] = {}
_recorded_lock = threading.Lock()


@dataclass(frozen=True)
class ZarrLocation:
    """A store's href plus what it takes to open it; picklable, so dask workers can open it too.

    Opening here does not list the store: it is for re-opening, window by window, a store its caller has
    already opened through `open_store` (a listing per window would cost more than the window). Chunks are
    still verified as they are read when the store's manifest recorded their hashes.
    """

    href: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    checksums: Mapping[str, str] | None = None

    @staticmethod
    def at(href: str) -> ZarrLocation:
        href = href if storage.scheme_of(href) == "s3" else storage.normalize_href(href)
        with _recorded_lock:
            checksums = _recorded_checksums.get(href)
        options = storage.s3_storage_options() if storage.scheme_of(href) == "s3" else {}
        return ZarrLocation(href, options, checksums)

    def store(self) -> Store | str:
        """The zarr store to read: verifying where hashes were recorded, else the href itself."""
        if self.checksums is None:
            return self.href
        if storage.scheme_of(self.href) == "s3":
            inner: Store = FsspecStore.from_url(self.href, storage_options=self.storage_options, read_only=True)
        else:
            inner = LocalStore(self.href, read_only=True)
        return VerifyingStore(inner, self.checksums, name=storage.redact(self.href))

    def open(self, *, lazy: bool = True) -> xr.Dataset:
        """Lazy dask arrays, or (`lazy=False`) plain lazily indexed arrays whose reads decode only the
        chunks they touch, without a dask graph."""
        store = self.store()
        options = (self.storage_options or None) if isinstance(store, str) else None
        chunks: dict[str, Any] | None = {} if lazy else None
        dataset: xr.Dataset = xr.open_zarr(store, consolidated=True, chunks=chunks, storage_options=options)
        return dataset

    def write_region(self, dataset: xr.Dataset, region: Mapping[str, slice]) -> None:
        """Fill `region` of an existing store; all-fill chunks are stored too (see the module docstring)."""
        # xarray annotates storage_options as dict[str, str]; s3 options nest a client_kwargs dict.
        options = cast(dict[str, str], self.storage_options) if self.storage_options else None
        dataset.to_zarr(self.href, region=dict(region), zarr_format=2, write_empty_chunks=True, storage_options=options)


class ZarrProduct(NamedTuple):
    """An item and its verified store (unpacks as `item, dataset`)."""

    item: pystac.Item
    dataset: xr.Dataset

    @property
    def grid(self) -> GeoBox:
        return geobox_of(self.item)

    @property
    def store(self) -> str:
        return self.item.assets[DATA_ASSET].get_absolute_href() or ""

    @property
    def location(self) -> ZarrLocation:
        """For workers that re-open the store window by window."""
        return ZarrLocation.at(self.store)


def georeferenced(dataset: xr.Dataset, grid: GeoBox) -> xr.Dataset:
    """`dataset` with the `spatial_ref` coordinate of `grid` (CF grid-mapping attributes, WKT, GeoTransform)
    linked from every data variable, for `write_dataset`.

    rioxarray names the grid mapping in each variable's `grid_mapping`, and xarray then leaves `spatial_ref`
    out of the `coordinates` it writes, so a plain `open_zarr` would read it back as a data variable without
    a CRS; naming it in `coordinates` as well makes it a coordinate again on every read.
    """
    with_crs: xr.Dataset = dataset.rio.write_crs(f"EPSG:{epsg_of(grid)}", grid_mapping_name=GRID_MAPPING)
    located: xr.Dataset = with_crs.rio.write_transform(grid.affine, grid_mapping_name=GRID_MAPPING)
    for variable in located.data_vars.values():
        variable.encoding["grid_mapping"] = GRID_MAPPING
        variable.encoding["coordinates"] = GRID_MAPPING
    return located


def write_dataset(dataset: xr.Dataset, path: Path, *, encoding: Mapping[str, Any], compute: bool = True) -> None:
    """A new Zarr v2 store with consolidated metadata and every chunk stored (`compute=False`: metadata and
    coordinates only, for windows to fill with `ZarrLocation.write_region`). Call `record_manifest` after
    the last chunk."""
    options: dict[str, Any] = {
        "mode": "w",
        "encoding": _keeping_grid_mapping(dataset, encoding),
        "zarr_format": 2,
        "consolidated": True,
    }
    if compute:
        dataset.to_zarr(path, **options, write_empty_chunks=True)
    else:
        dataset.to_zarr(path, **options, compute=False, write_empty_chunks=True)
    write_gdal_sidecar(dataset, path)


def write_gdal_sidecar(dataset: xr.Dataset, path: Path) -> None:
    """The CRS of every (..., y, x) variable in the store's GDAL sidecar (`pam.aux.xml`), for GDAL before 3.9.

    Not GDAL's `_CRS` array attribute, which GDAL 3.6 reads too: it pairs the CRS axes with the array's first
    two dimensions, not with y and x, so `gdalwarp` puts a (y, x) or (time, band, y, x) array in the wrong
    place (GDAL's own Zarr output included). The sidecar names the axis mapping explicitly. GDAL 3.9 and later
    take the CF grid mapping first. Left out of the manifest: GDAL rewrites the file when it computes
    statistics, and no reader of this project reads it.
    """
    if GRID_MAPPING not in dataset.coords or "crs_wkt" not in dataset[GRID_MAPPING].attrs:
        return
    wkt = pyproj.CRS.from_wkt(str(dataset[GRID_MAPPING].attrs["crs_wkt"])).to_wkt(WktVersion.WKT2_2019)
    root = ElementTree.Element("PAMDataset")
    for name, variable in sorted(dataset.data_vars.items(), key=lambda pair: str(pair[0])):
        dims = [str(dim) for dim in variable.dims]
        if "x" not in dims or "y" not in dims:
            continue
        array = ElementTree.SubElement(root, "Array", name=f"/{name}")
        # 1-based array dimensions of the CRS's easting and northing axes, as GDAL's multidimensional API counts
        mapping = f"{dims.index('x') + 1},{dims.index('y') + 1}"
        ElementTree.SubElement(array, "SRS", dataAxisToSRSAxisMapping=mapping).text = wkt
    ElementTree.indent(root)
    (path / GDAL_PAM).write_bytes(ElementTree.tostring(root, encoding="utf-8") + b"\n")


def _keeping_grid_mapping(dataset: xr.Dataset, encoding: Mapping[str, Any]) -> dict[str, Any]:
    """`encoding` plus each variable's own `grid_mapping`: xarray replaces a variable's encoding with the one
    passed to `to_zarr`, which would drop the link `georeferenced` made."""
    merged = {str(name): dict(values) for name, values in encoding.items()}
    for name, variable in dataset.data_vars.items():
        if "grid_mapping" in variable.encoding:
            merged.setdefault(str(name), {}).setdefault("grid_mapping", variable.encoding["grid_mapping"])
    return merged


def manifest_href(store: str) -> str:
    """Where the manifest of `store` lives: beside it, so the Zarr hierarchy holds nothing Zarr does not know."""
    return store.rstrip("/") + MANIFEST_SUFFIX


@dataclass(frozen=True)
class Manifest:
    """What `record_manifest` wrote: the file, and its size and checksum for the item's `manifest` asset."""

    path: Path
    objects: int
    bytes: int
    size: int
    checksum: str  # multihash (sha2-256), as the file extension's file:checksum


def record_manifest(store: Path) -> Manifest:
    """List the finished local store (stages always write into a local staging folder) into its manifest.

    Refuses a store whose metadata declares chunks that are not on disk: that is a writer's bug, and a
    manifest recording it would make the hole look intended.
    """
    sizes = _local_listing(store)
    sizes.pop(GDAL_PAM, None)  # GDAL's sidecar, which GDAL may rewrite (see `write_gdal_sidecar`)
    unwritten = [key for key in _declared_chunks(store) if key not in sizes]
    if unwritten:
        raise RuntimeError(f"Zarr store {store} lacks {len(unwritten)} declared chunks ({_first(unwritten)})")
    hashes = {key: chunk_checksum((store / key).read_bytes()) for key in sorted(sizes)}
    document = {
        "format": MANIFEST_FORMAT,
        "store": store.name,
        "objects": len(sizes),
        "bytes": sum(sizes.values()),
        "sizes": dict(sorted(sizes.items())),
        "checksums": hashes,
    }
    data = (json.dumps(document, indent=1) + "\n").encode("utf-8")
    path = Path(manifest_href(str(store)))
    path.write_bytes(data)
    return Manifest(path, len(sizes), sum(sizes.values()), len(data), file_checksum(data))


def add_store_assets(item: pystac.Item, store: Path, *, title: str, manifest: Manifest) -> None:
    """The item's `data` asset (the store) and `manifest` asset (the listing, with its size and checksum)."""
    item.add_asset(DATA_ASSET, zarr_asset(str(store), title=title))
    asset = pystac.Asset(
        str(manifest.path),
        title=f"Byte size of each of the {manifest.objects} objects of {store.name}",
        media_type=pystac.MediaType.JSON,
        roles=["metadata"],
    )
    item.add_asset(MANIFEST_ASSET, asset)
    file_fields = FileExtension.ext(asset, add_if_missing=True)
    file_fields.size = manifest.size
    file_fields.checksum = manifest.checksum


def zarr_asset(path: str, *, title: str) -> pystac.Asset:
    """A `data` asset for a Zarr store (items written by code other than a stage use it alone).

    `xarray:open_kwargs` is the xarray-assets extension's field, written without declaring the extension:
    xpystac reads the field either way, and a declared extension is validated against its schema, which
    the offline schema bundle the outputs are validated with does not hold.
    """
    return pystac.Asset(
        path,
        title=title,
        media_type=ZARR_MEDIA_TYPE,
        roles=["data"],
        extra_fields={OPEN_KWARGS_PROP: dict(OPEN_KWARGS)},
    )


@dataclass(frozen=True)
class ExpectedManifest:
    """What an item recorded about its store's manifest; a declared manifest must be there and unchanged."""

    href: str
    size: int | None
    checksum: str | None

    @staticmethod
    def of(item: pystac.Item) -> ExpectedManifest | None:
        asset = item.assets.get(MANIFEST_ASSET)
        if asset is None:
            return None
        href = asset.get_absolute_href() or asset.href
        if not FileExtension.has_extension(item):  # an item edited by hand: the file must still be there
            return ExpectedManifest(href, None, None)
        file_fields = FileExtension.ext(asset)
        return ExpectedManifest(href, file_fields.size, file_fields.checksum)


def open_store(
    href: str,
    *,
    made_by: str,
    variables: Sequence[str] = (),
    lazy: bool = True,
    expected: ExpectedManifest | None = None,
) -> xr.Dataset:
    """The store at `href`, opened after its listing was checked against its manifest; its chunks are verified
    against the manifest's hashes as they are read."""
    fix = f"re-run `deep-lulc {made_by}` to write it again, or re-upload the whole store"
    checksums = verify_store(href, fix=fix, expected=expected)
    location = ZarrLocation.at(href)
    if checksums is not None:
        with _recorded_lock:
            _recorded_checksums[location.href] = checksums
        location = ZarrLocation(location.href, location.storage_options, checksums)
    try:
        dataset = location.open(lazy=lazy)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise BadInputError(
            f"Zarr store {storage.redact(href)} cannot be opened: {exc}",
            fix=f"pass the catalog.json written by `deep-lulc {made_by}`",
        ) from exc
    missing = [name for name in variables if name not in dataset]
    if missing:
        raise BadInputError(
            f"{storage.redact(href)} lacks variables {missing}",
            fix=f"pass the catalog.json written by `deep-lulc {made_by}`",
        )
    return dataset


def open_item_store(
    href: str, *, variables: Sequence[str], made_by: str, lazy: bool = True
) -> tuple[pystac.Item, xr.Dataset]:
    """The first item under `href` (catalog or item) with a Zarr `data` asset, and its verified store."""
    candidates = [
        item
        for item in items_of(read_stac(href))
        if DATA_ASSET in item.assets and item.assets[DATA_ASSET].media_type == ZARR_MEDIA_TYPE
    ]
    if not candidates:
        raise BadInputError(
            f"{storage.redact(href)} holds no item with a Zarr 'data' asset",
            fix=f"pass the catalog.json written by `deep-lulc {made_by}`",
        )
    item = candidates[0]
    store = item.assets[DATA_ASSET].get_absolute_href() or ""
    dataset = open_store(store, made_by=made_by, variables=variables, lazy=lazy, expected=ExpectedManifest.of(item))
    declared = item.properties.get("proj:shape")
    stored = [int(dataset.sizes.get("y", -1)), int(dataset.sizes.get("x", -1))]
    if declared is not None and [int(v) for v in declared] != stored:
        raise BadInputError(
            f"item {item.id} declares a {declared[0]} x {declared[1]} px grid but its store "
            f"{storage.redact(store)} holds {stored[0]} x {stored[1]} px",
            fix=f"re-run `deep-lulc {made_by}`: the item and the store come from different runs",
        )
    return item, dataset


def verify_store(href: str, *, fix: str, expected: ExpectedManifest | None = None) -> dict[str, str] | None:
    """Bad input naming the first missing or truncated objects when the listing disagrees with the manifest;
    the checksum of every object, where the manifest recorded them, for verifying each object as it is read."""
    name = storage.redact(href)
    manifest_at = expected.href if expected is not None else manifest_href(href)
    raw = _read_optional(manifest_at)
    if raw is None:
        if expected is not None:
            raise BadInputError(f"the manifest of Zarr store {name} is missing: {storage.redact(manifest_at)}", fix=fix)
        log.warning("Zarr store %s has no manifest (written before deep-lulc recorded one): chunks not verified", name)
        return None
    if expected is not None and (
        (expected.size is not None and len(raw) != expected.size)
        or (expected.checksum is not None and file_checksum(raw) != expected.checksum)
    ):
        raise BadInputError(
            f"the manifest of Zarr store {name} ({storage.redact(manifest_at)}) differs from the one its item "
            f"recorded ({len(raw)} bytes, {expected.size} recorded)",
            fix=fix,
        )
    recorded, checksums = _parse_manifest(raw, manifest_at, fix=fix)
    if checksums is None:
        log.warning(
            "Zarr store %s has a manifest of sizes only (written before deep-lulc recorded hashes): "
            "chunk contents not verified",
            name,
        )
    listing = _listing(href)
    if listing is None:
        log.warning("Zarr store %s cannot be listed over %s: chunks not verified", name, storage.scheme_of(href))
        return checksums
    missing = [key for key in recorded if key not in listing]
    truncated = [key for key, size in recorded.items() if key in listing and listing[key] != size]
    if missing or truncated:
        problems = []
        if missing:
            problems.append(f"{len(missing)} of {len(recorded)} objects missing ({_first(missing)})")
        if truncated:
            shown = [f"{key}: {listing[key]} of {recorded[key]} bytes" for key in truncated]
            problems.append(f"{len(truncated)} truncated ({_first(shown)})")
        raise BadInputError(f"Zarr store {name} is damaged: {'; '.join(problems)}", fix=fix)
    return checksums


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown if len(keys) <= SHOWN_KEYS else f"{shown} and {len(keys) - SHOWN_KEYS} more"


def _read_optional(href: str) -> bytes | None:
    fs, path = storage.filesystem_for(href)
    try:
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage.classify_os_error(exc, action=f"reading {storage.redact(href)}") from exc


def _parse_manifest(raw: bytes, href: str, *, fix: str) -> tuple[dict[str, int], dict[str, str] | None]:
    """Sizes, and hashes (None in a format-1 manifest) by key."""
    try:
        document = json.loads(raw)
        if document.get("format") not in (MANIFEST_FORMAT, SIZES_ONLY_FORMAT):
            raise ValueError(f"format {document.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        sizes = {str(key): int(size) for key, size in document["sizes"].items()}
        if document["format"] == SIZES_ONLY_FORMAT:
            return sizes, None
        hashes = {str(key): str(value) for key, value in document["checksums"].items()}
        if set(hashes) != set(sizes):
            raise ValueError("its sizes and checksums name different objects")
        return sizes, hashes
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BadInputError(f"Zarr manifest {storage.redact(href)} is unreadable: {exc}", fix=fix) from exc


def _local_listing(store: Path) -> dict[str, int]:
    """Relative key -> size; `os.scandir` (not `Path` objects) keeps this near 3 us an object."""
    sizes: dict[str, int] = {}
    pending = [(str(store), "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, f"{prefix}{entry.name}/"))
                else:
                    sizes[prefix + entry.name] = entry.stat().st_size
    return sizes


def _listing(href: str) -> dict[str, int] | None:
    """Relative key -> size of every object under the store; None where the scheme cannot list (http)."""
    scheme = storage.scheme_of(href)
    if scheme == "file":
        root = Path(storage.normalize_href(href))
        return _local_listing(root) if root.is_dir() else {}
    if scheme != "s3":
        return None
    fs, path = storage.filesystem_for(href)
    prefix = path.rstrip("/") + "/"
    try:
        found: dict[str, dict[str, Any]] = fs.find(prefix, detail=True)
    except OSError as exc:
        raise storage.classify_os_error(exc, action=f"listing {storage.redact(href)}") from exc
    return {key[len(prefix) :]: int(info["size"]) for key, info in found.items() if key.startswith(prefix)}


def _declared_chunks(store: Path) -> list[str]:
    """Every chunk key the consolidated v2 metadata declares (a 0-d array has the one chunk `0`)."""
    consolidated = json.loads((store / ".zmetadata").read_text(encoding="utf-8"))["metadata"]
    keys: list[str] = []
    for name, meta in consolidated.items():
        if not name.endswith("/.zarray"):
            continue
        array = name.removesuffix("/.zarray")
        counts = [math.ceil(int(s) / int(c)) for s, c in zip(meta["shape"], meta["chunks"], strict=True)]
        separator = str(meta.get("dimension_separator") or ".")
        if not counts:
            keys.append(f"{array}/0")
            continue
        for index in itertools.product(*(range(n) for n in counts)):
            keys.append(f"{array}/{separator.join(str(i) for i in index)}")
    return keys

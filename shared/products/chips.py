"""Training chips: one STAC item per chip (a features window, its eroded labels, a preview) in the `chips`
collection, which records how they were cut; and the typed reader `train` uses.

The writer records each chip file's `file:size`; the reader checks every chip against it before training
starts, so a chip lost or cut short in a copy is bad input naming the file, not a crash in the middle of an
epoch or a chip read as zeros.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
from PIL import Image
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.label import LabelClasses, LabelExtension, LabelTask, LabelType
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.layout import CustomLayoutStrategy
from rasterio.errors import RasterioError
from shapely.geometry import mapping

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, write_projection
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.cog import open_cog, write_cog
from deep_lulc.shared.io.integrity import Recorded
from deep_lulc.shared.io.preview import PNG_MEDIA_TYPE
from deep_lulc.shared.io.stac import (
    COLLECTION_NAME,
    covering_extent,
    period_item,
    read_stac,
    save_self_contained,
    stac_id,
    stamp_provenance,
    stem,
    unwrapped,
)
from deep_lulc.shared.lulc.classes import ClassScheme, class_scheme_from_dict

__all__ = [
    "CHIPS_FOLDER",
    "IMAGE_NODATA",
    "IMAGE_SCALE",
    "TRAIN",
    "VALIDATION",
    "ChipRecord",
    "ChipSet",
    "ChipsSummary",
    "channel_names",
    "read_chip",
    "read_chips",
    "read_label",
    "recorded_windows",
    "write_chip",
    "write_chips_catalog",
]

CHIPS_FOLDER = "chips"  # the collection and its chips, under the output folder, whatever the collection's id
TRAIN, VALIDATION = "train", "validation"
IMAGE_SCALE = 1e-4  # features are stored as int16 x 1e-4: reflectance and indices keep 4 decimals
IMAGE_NODATA = -32768
IMAGE, LABEL, PREVIEW, SPLIT = "image", "label", "preview", "split"
READ_ASSETS = (IMAGE, LABEL)  # what `train` reads: the files the reader checks
FIX_CHIPS = "pass the catalog.json written by `deep-lulc chips`"
FIX_DAMAGED = "copy the whole chips folder again, or rebuild the chips with `deep-lulc chips`"
# The fields this module writes and reads back, spelled once (chip items: block, window; the rest: collection).
_BLOCK = "deep-lulc:block"
_WINDOW = "deep-lulc:window"
_CHIP_SIZE = "deep-lulc:chip_size"
_BLOCK_SIZE = "deep-lulc:block_size"
_COUNT = "deep-lulc:count"
_AUTO = "deep-lulc:auto"
_CHANNELS = "deep-lulc:channels"
_FEATURES = "deep-lulc:features"
_DATES = "deep-lulc:dates"
_CLASS_COUNTS = "deep-lulc:class_counts"
_NORMALIZATION = "deep-lulc:normalization"
_SPLIT_WARNINGS = "deep-lulc:split_warnings"
_CHIPS = "deep-lulc:chips"
_LABELS = "deep-lulc:labels"
_CLASSES = "deep-lulc:classes"
InputMode = Literal["stack", "single-date"]


def channel_names(features: Sequence[str], dates: Sequence[str]) -> list[str]:
    """One name per image band: feature x date, date-major, e.g. 'B02_2023-01-01'."""
    return [f"{feature}_{date}" for date in dates for feature in features]


def encode_image(values: np.ndarray) -> np.ndarray:
    scaled = np.round(np.nan_to_num(values, nan=0.0) / IMAGE_SCALE)
    encoded = np.asarray(np.clip(scaled, IMAGE_NODATA + 1, 32767), dtype=np.int16)
    encoded[np.isnan(values)] = IMAGE_NODATA
    return encoded


def label_preview(image: np.ndarray, label: np.ndarray, scheme: ClassScheme, names: list[str], path: Path) -> None:
    """True colour of the middle date beside the label colours, for browsing chips."""
    dates = sorted({name.split("_", 1)[1] for name in names})
    middle = dates[len(dates) // 2]
    rgb = np.stack([image[names.index(f"{band}_{middle}")] for band in ("B04", "B03", "B02")], axis=-1)
    rgb = (np.clip(np.nan_to_num(rgb) / 0.3, 0, 1) ** (1 / 1.6) * 255).astype(np.uint8)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for cls in scheme.classes:
        palette[cls.value] = cls.rgb
    colours = palette[label]
    colours[label == scheme.nodata] = (40, 40, 40)
    Image.fromarray(np.concatenate([rgb, colours], axis=1)).save(path, format="PNG")


def _recorded_asset(item: pystac.Item, key: str, path: Path, **fields: Any) -> pystac.Asset:
    """An asset of `item` for the file at `path`, with the size the reader will check it against."""
    asset = pystac.Asset(str(path), **fields)
    item.add_asset(key, asset)
    FileExtension.ext(asset, add_if_missing=True).size = path.stat().st_size
    return asset


def write_chip(
    folder: Path,
    identifier: str,
    values: np.ndarray,
    label: np.ndarray,
    *,
    features_grid: GeoBox,
    row: int,
    col: int,
    split: str,
    block: str,
    features_item: pystac.Item,
    channels: list[str],
    scheme: ClassScheme,
) -> pystac.Item:
    """Write one chip's files under `folder/identifier` and return its item. `values` (bands, size, size) is
    the features window at (`row`, `col`) of `features_grid`, `label` its labels; safe to call on threads."""
    size = label.shape[0]
    grid = features_grid[row : row + size, col : col + size]
    epsg = epsg_of(grid)
    directory = folder / identifier
    image_path = write_cog(
        directory / "image.tif",
        encode_image(values),
        transform=grid.affine,
        epsg=epsg,
        nodata=IMAGE_NODATA,
        band_descriptions=channels,
        scale=IMAGE_SCALE,
    )
    colormap = {cls.value: (*cls.rgb, 255) for cls in scheme.classes}
    label_path = write_cog(
        directory / "label.tif",
        label,
        transform=grid.affine,
        epsg=epsg,
        nodata=scheme.nodata,
        overview_resampling="nearest",
        colormap=colormap,
    )
    preview_path = directory / "preview.png"
    label_preview(values, label, scheme, channels, preview_path)
    left, bottom, right, top = grid.boundingbox
    footprint = bounds_to_wgs84(epsg, (left, bottom, right, top), segments=1)
    period = (features_item.properties["start_datetime"], features_item.properties["end_datetime"])
    item = period_item(
        identifier,
        mapping(footprint),
        footprint.bounds,
        period,
        {
            "split": split,
            _BLOCK: block,
            _WINDOW: {"row": row, "col": col, "size": size},
        },
    )
    LabelExtension.ext(item, add_if_missing=True).apply(
        label_type=LabelType.RASTER,
        label_tasks=[LabelTask.SEGMENTATION],
        label_properties=None,
        label_description="LULC class per pixel, eroded; 0 = no label",
        label_classes=[LabelClasses.create(classes=[c.value for c in scheme.labelled], name=None)],
    )
    ClassificationExtension.add_to(item)
    EOExtension.add_to(item)
    RasterExtension.add_to(item)
    write_projection(item, grid)
    image = _recorded_asset(
        item, IMAGE, image_path, title="Features x dates", media_type=pystac.MediaType.GEOTIFF, roles=["data"]
    )
    EOExtension.ext(image).bands = [Band.create(name=name) for name in channels]
    RasterExtension.ext(image).bands = [
        RasterBand.create(nodata=IMAGE_NODATA, data_type=DataType.INT16, scale=IMAGE_SCALE, offset=0.0)
        for _ in channels
    ]
    labels = _recorded_asset(
        item, LABEL, label_path, title="LULC labels", media_type=pystac.MediaType.GEOTIFF, roles=["labels"]
    )
    ClassificationExtension.ext(labels).classes = [Classification(c) for c in scheme.to_classification()]
    RasterExtension.ext(labels).bands = [RasterBand.create(nodata=scheme.nodata, data_type=DataType.UINT8)]
    _recorded_asset(
        item, PREVIEW, preview_path, title="Image and labels", media_type=PNG_MEDIA_TYPE, roles=["thumbnail"]
    )
    stamp_provenance(item, derived_from=[features_item.get_self_href() or features_item.id])
    return item


@dataclass(frozen=True)
class ChipsSummary:
    """How the chips were cut, recorded on the collection: `train` reads the channels, the training split's
    statistics and the class scheme back from it."""

    sampling: str
    chip_size: int
    block_size: int
    count: int
    auto: list[str]
    channels: list[str]  # feature_date names, date-major (`channel_names`)
    features: list[str]
    class_counts: dict[str, dict[str, int]]  # split -> class value -> labelled pixels
    mean: np.ndarray  # per channel, over the training chips
    std: np.ndarray
    split_warnings: list[str]
    tally: dict[str, int]
    labels: dict[str, Any]
    scheme: ClassScheme

    def fields(self) -> dict[str, Any]:
        return {
            _CHIP_SIZE: self.chip_size,
            _BLOCK_SIZE: self.block_size,
            _COUNT: self.count,
            _AUTO: list(self.auto),
            _CHANNELS: list(self.channels),
            _FEATURES: list(self.features),
            _DATES: sorted({n.split("_", 1)[1] for n in self.channels}),
            _CLASS_COUNTS: self.class_counts,
            _NORMALIZATION: {"mean": self.mean.round(6).tolist(), "std": self.std.round(6).tolist()},
            _SPLIT_WARNINGS: list(self.split_warnings),
            _CHIPS: self.tally,
            _LABELS: self.labels,
            _CLASSES: self.scheme.to_dict(),
        }


def write_chips_catalog(
    directory: Path,
    *,
    features_item: pystac.Item,
    summary: ChipsSummary,
    items: Sequence[pystac.Item],
    split_path: Path,
    labels_href: str,
) -> Path:
    """The `chips` catalog in `directory`: the collection of `items` (from `write_chip`) with `summary` and the
    block -> split file; returns the catalog.json path."""
    collection = pystac.Collection(
        id=chips_collection_id(features_item.id, summary),
        title=f"Training chips {summary.chip_size} px ({summary.sampling} sampling)",
        description="Feature windows and eroded LULC labels, split by spatial blocks into train and validation.",
        extent=covering_extent(items),
        license="other",
        summaries=pystac.Summaries({"split": [TRAIN, VALIDATION]}),
    )
    collection.add_link(
        pystac.Link("derived_from", features_item.get_self_href() or features_item.id, media_type=pystac.MediaType.JSON)
    )
    collection.extra_fields.update(summary.fields())
    collection.add_asset(
        SPLIT,
        pystac.Asset(
            str(split_path),
            title="Block -> split assignment (reusable with --split-file)",
            media_type=pystac.MediaType.JSON,
            roles=["metadata"],
        ),
    )
    collection.add_link(
        pystac.Link("derived_from", storage.redact(labels_href), media_type="application/octet-stream", title="labels")
    )
    collection.add_items(sorted(items, key=lambda item: item.id))
    catalog = pystac.Catalog(id=collection.id, description="Training chips (deep-lulc chips)")
    catalog.add_child(collection)
    return save_self_contained(catalog, directory, layout=_CHIPS_LAYOUT)


def chips_collection_id(features_id: str, summary: ChipsSummary) -> str:
    """`chips-<features>-<digest of how they were cut>`: chips of other features, labels or params (what the
    collection records: size, count, class counts, normalisation) get another id, the same chips the same."""
    digest = hashlib.sha256(json.dumps(summary.fields(), sort_keys=True).encode()).hexdigest()[:8]
    return stac_id("chips", stem(features_id, "features"), digest)


def _collection_in_chips_folder(collection: pystac.Collection, parent_dir: str, is_root: bool) -> str:
    return posixpath.join(parent_dir, CHIPS_FOLDER, COLLECTION_NAME)


# The collection in `chips/` beside the chip folders, whatever its id (pystac would name the folder by it).
_CHIPS_LAYOUT = CustomLayoutStrategy(collection_func=_collection_in_chips_folder)


@dataclass(frozen=True)
class ChipRecord:
    item_id: str
    image: str
    label: str
    split: str
    window: tuple[int, int, int] | None = None  # (row, col, size) on the features grid
    image_size: int | None = None  # file:size as recorded by the chips stage (None: chips from before)
    label_size: int | None = None
    image_checksum: str | None = None  # file:checksum, verified when the chip is read
    label_checksum: str | None = None


def recorded_windows(records: Sequence[ChipRecord], *, which: str) -> list[tuple[int, int, int]]:
    """The (row, col, size) of the `which` chips that record one: chips cut before windows were recorded
    cannot be placed back on the features grid, so none at all is bad input."""
    windows = [r.window for r in records if r.window is not None]
    if not windows:
        raise BadInputError(f"the {which} chips carry no {_WINDOW}", fix="rebuild the chips with this version")
    return windows


@dataclass(frozen=True)
class ChipSet:
    """A chips collection as `train` needs it: the chips with their split, the inputs and the class scheme."""

    href: str
    collection_href: str
    records: tuple[ChipRecord, ...]
    channels: tuple[str, ...]  # feature_date names, date-major
    features: tuple[str, ...]
    dates: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    class_counts: dict[str, dict[str, int]]
    scheme: ClassScheme
    chip_size: int
    bbox: list[float]
    temporal: tuple[str, str]
    features_href: str | None = None  # the features item the chips were cut from (map-level validation)

    def split(self, name: str) -> list[ChipRecord]:
        return [r for r in self.records if r.split == name]

    def input_statistics(self, mode: InputMode) -> tuple[np.ndarray, np.ndarray]:
        """Per input channel mean/std: per band for stack; pooled over dates per feature for single-date."""
        if mode == "stack":
            return self.mean, self.std
        mean = self.mean.reshape(len(self.dates), len(self.features))
        std = self.std.reshape(len(self.dates), len(self.features))
        pooled_mean = mean.mean(axis=0)
        pooled_var = (std**2 + mean**2).mean(axis=0) - pooled_mean**2
        return pooled_mean, np.sqrt(np.maximum(pooled_var, 0.0))


def _chips_collection(href: str) -> pystac.Collection:
    root = read_stac(href)
    collection = root if isinstance(root, pystac.Collection) else None
    if collection is None and isinstance(root, pystac.Catalog):
        try:
            collection = next((c for c in root.get_children() if isinstance(c, pystac.Collection)), None)
        except pystac.STACError as exc:
            raise unwrapped(exc) from exc
    if collection is None or _CHANNELS not in collection.extra_fields:
        raise BadInputError(f"{storage.redact(href)} holds no chips collection", fix=FIX_CHIPS)
    return collection


def read_chips(href: str) -> ChipSet:
    """The chips collection at `href` (its catalog, or the collection itself), every chip file checked
    against the size the chips stage recorded."""
    collection = _chips_collection(href)
    fields = collection.extra_fields
    name = storage.redact(collection.get_self_href() or href)
    try:
        channels = tuple(str(c) for c in fields[_CHANNELS])
        features = tuple(str(f) for f in fields[_FEATURES])
        dates = tuple(str(d) for d in fields[_DATES])
        normalization = fields[_NORMALIZATION]
        mean = np.asarray(normalization["mean"], dtype=np.float32)
        std = np.asarray(normalization["std"], dtype=np.float32)
        counts = fields[_CLASS_COUNTS]
        class_counts = {str(s): {str(k): int(v) for k, v in c.items()} for s, c in counts.items()}
        chip_size = int(fields[_CHIP_SIZE])
        classes = fields[_CLASSES]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadInputError(
            f"chips collection {name} has a missing or malformed field ({exc!r})",
            fix="rebuild the chips with `deep-lulc chips`",
        ) from exc
    if channels != tuple(channel_names(features, dates)):
        raise BadInputError(
            f"chips channels ({len(channels)}) are not the features x dates grid {len(features)} x {len(dates)}",
            fix="rebuild the chips with `deep-lulc chips` from a features item",
        )
    if not dates:
        raise BadInputError("chips hold no dates", fix="rebuild the chips")
    items = sorted(collection.get_items(), key=lambda i: i.id)
    _check_chip_files(items, folder=_folder_of(collection.get_self_href() or href))
    records = []
    for item in items:
        window = item.properties.get(_WINDOW)
        records.append(
            ChipRecord(
                item_id=item.id,
                image=item.assets[IMAGE].get_absolute_href() or "",
                label=item.assets[LABEL].get_absolute_href() or "",
                split=str(item.properties.get("split")),
                window=(int(window["row"]), int(window["col"]), int(window["size"])) if window else None,
                image_size=_recorded_size(item, IMAGE),
                label_size=_recorded_size(item, LABEL),
                image_checksum=Recorded.of(item.assets[IMAGE]).checksum,
                label_checksum=Recorded.of(item.assets[LABEL]).checksum,
            )
        )
    source_link = collection.get_single_link("derived_from")
    interval = collection.extent.temporal.intervals[0]
    return ChipSet(
        href=href,
        collection_href=collection.get_self_href() or href,
        records=tuple(records),
        channels=channels,
        features=features,
        dates=dates,
        mean=mean,
        std=std,
        class_counts=class_counts,
        scheme=class_scheme_from_dict(classes, source="chips collection"),
        chip_size=chip_size,
        bbox=list(collection.extent.spatial.bboxes[0]),
        temporal=(
            interval[0].isoformat().replace("+00:00", "Z") if interval[0] else "",
            interval[1].isoformat().replace("+00:00", "Z") if interval[1] else "",
        ),
        features_href=source_link.get_absolute_href() if source_link is not None else None,
    )


def _recorded_size(item: pystac.Item, key: str) -> int | None:
    return FileExtension.ext(item.assets[key]).size if FileExtension.has_extension(item) else None


def _check_chip_files(items: Sequence[pystac.Item], *, folder: str) -> None:
    """Every chip file `train` reads exists with the size its item records (chips from before `file:size`
    was recorded are checked for existence only)."""
    expected: list[tuple[str, str, int | None]] = []  # (item id, href, recorded size)
    for item in items:
        missing_keys = [key for key in READ_ASSETS if key not in item.assets]
        if missing_keys:
            raise BadInputError(f"chip {item.id} has no {' or '.join(missing_keys)} asset", fix=FIX_CHIPS)
        for key in READ_ASSETS:
            asset = item.assets[key]
            expected.append((item.id, asset.get_absolute_href() or asset.href, _recorded_size(item, key)))
    sizes = _file_sizes([href for _, href, _ in expected], folder=folder)
    problems = []
    for item_id, href, size in expected:
        actual = sizes.get(href)
        if actual is None:
            problems.append(f"chip file {storage.redact(href)} of {item_id} is missing")
        elif size is not None and actual < size:
            problems.append(
                f"chip file {storage.redact(href)} of {item_id} is truncated: {actual} bytes where "
                f"the chips collection records {size}"
            )
        elif size is not None and actual != size:
            problems.append(
                f"chip file {storage.redact(href)} of {item_id} is not the file `deep-lulc chips` "
                f"wrote: {actual} bytes where the chips collection records {size}"
            )
    if problems:
        more = f" (and {len(problems) - 1} more damaged chip files)" if len(problems) > 1 else ""
        raise BadInputError(problems[0] + more, fix=FIX_DAMAGED)


def _file_sizes(hrefs: Sequence[str], *, folder: str) -> dict[str, int]:
    """The size of each of `hrefs` that exists: from one listing of `folder` where the store lists (local,
    s3: one request for a thousand chips rather than two thousand), else one look-up per file."""
    listed: dict[str, int] | None = None
    fs, root = storage.filesystem_for(folder)
    if storage.scheme_of(folder) in ("file", "s3"):
        try:
            found = fs.find(root, detail=True)
        except OSError as exc:
            raise storage.classify_os_error(exc, action=f"listing the chips in {storage.redact(folder)}") from exc
        listed = {str(path): int(info["size"]) for path, info in found.items() if info.get("size") is not None}
    inside = root.rstrip("/") + "/"
    sizes: dict[str, int] = {}
    for href in hrefs:
        fs, path = storage.filesystem_for(href)
        if listed is not None and path.startswith(inside):
            if path in listed:
                sizes[href] = listed[path]
            continue
        try:
            sizes[href] = int(fs.size(path))
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise storage.classify_os_error(exc, action=f"reading chip file {storage.redact(href)}") from exc
    return sizes


def _folder_of(href: str) -> str:
    if storage.scheme_of(href) == "file":
        return str(Path(storage.normalize_href(href)).parent)
    return href.rsplit("/", 1)[0]


@contextlib.contextmanager
def _chip_file(href: str, size: int | None, checksum: str | None) -> Iterator[Any]:
    """The chip file open for reading, checked again against its recorded size and content (it may have
    changed since `read_chips`); a tile GDAL cannot decode is bad input naming the file too."""
    try:
        with open_cog(href, size=size, what="chip file", fix=FIX_DAMAGED, checksum=checksum) as source:
            yield source
    except RasterioError as exc:
        raise BadInputError(f"chip file {storage.redact(href)} cannot be read ({exc})", fix=FIX_DAMAGED) from exc


def read_label(record: ChipRecord) -> np.ndarray:
    with _chip_file(record.label, record.label_size, record.label_checksum) as source:
        return np.asarray(source.read(1), dtype=np.int64)


def read_chip(record: ChipRecord) -> tuple[np.ndarray, np.ndarray]:
    """Image (bands, y, x) float32 with NaN for nodata, and label (y, x) int64."""
    with _chip_file(record.image, record.image_size, record.image_checksum) as source:
        raw = source.read()
        scales = source.scales
        image = raw.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None, None]
        image[raw == source.nodata] = np.nan
    with _chip_file(record.label, record.label_size, record.label_checksum) as source:
        label = source.read(1).astype(np.int64)
    return image, label

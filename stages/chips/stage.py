"""`deep-lulc chips`: labels onto the features grid, eroded; windows sampled and split; one STAC item per chip."""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from affine import Affine
from PIL import Image
from shapely.geometry import mapping

from deep_lulc.shared import storage
from deep_lulc.shared.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.cog import write_cog
from deep_lulc.shared.contract import StageResult, write_params_file
from deep_lulc.shared.erosion import erode_labels
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geometry import bounds_to_wgs84
from deep_lulc.shared.labels import describe, load_class_map, rasterize_labels, read_labels
from deep_lulc.shared.preview import PNG_MEDIA_TYPE
from deep_lulc.shared.progress import progress
from deep_lulc.shared.publish import staged_output
from deep_lulc.shared.reruns import idempotent
from deep_lulc.shared.stac import save_self_contained, stamp_provenance
from deep_lulc.shared.zarr_items import zarr_item
from deep_lulc.stages.chips.auto import Layout, resolve_layout
from deep_lulc.stages.chips.params import ChipsParams
from deep_lulc.stages.chips.reader import ChunkedWindowReader
from deep_lulc.stages.chips.sampling import (
    CODES,
    TRAIN,
    VALIDATION,
    Chip,
    ForcedSplit,
    Placement,
    SplitRegions,
    assign_blocks,
    block_id,
    place_windows,
    presence_threshold,
    read_split_file,
    stratified_assignment,
)
from deep_lulc.stages.chips.windows import WindowStats, all_window_sums, block_sums, candidate_windows, labelled_values

STAGE = "chips"
LABEL_EXTENSION = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
CLASSIFICATION_EXTENSION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
EO_EXTENSION = "https://stac-extensions.github.io/eo/v1.1.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
GEOTIFF_MEDIA_TYPE = "image/tiff; application=geotiff"
IMAGE_SCALE = 1e-4  # features are stored as int16 x 1e-4: reflectance and indices keep 4 decimals
IMAGE_NODATA = -32768
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
WRITE_QUEUE = 2 * WRITE_THREADS
log = logging.getLogger(__name__)


def channel_names(dataset: xr.Dataset) -> list[str]:
    """One name per image band: feature x date, date-major, e.g. 'B02_2023-01-01'."""
    dates = [str(np.datetime_as_string(t, unit="D")) for t in dataset.time.values]
    return [f"{channel}_{date}" for date in dates for channel in dataset.channel.values.tolist()]


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


@idempotent(STAGE)
def run(*, inputs: Mapping[str, str], output: str, params: ChipsParams) -> StageResult:
    """Cut chips from `inputs['features']` labelled by `inputs['labels']` into `output`."""
    missing = [name for name in ("features", "labels") if name not in inputs]
    if missing:
        raise BadInputError(f"missing inputs {missing}", fix="pass --features HREF and --labels VECTOR")
    scheme = load_class_scheme(params.classes)
    class_map = load_class_map(params.class_map)
    forced = read_split_file(params.split_file) if params.split_file else None
    features_item, dataset = zarr_item(inputs["features"], variables=("features", "valid_count"), made_by="features")
    epsg = int(str(features_item.properties["proj:code"]).split(":")[1])
    transform = Affine(*features_item.properties["proj:transform"][:6])
    height, width = dataset.sizes["y"], dataset.sizes["x"]

    polygons = read_labels(
        inputs["labels"], class_column=params.class_column, scheme=scheme, class_map=class_map, target_epsg=epsg
    )
    if polygons.repaired or polygons.dropped:
        log.warning(
            "labels: repaired invalid geometries of features %s; dropped empty or unusable features %s",
            list(polygons.repaired)[:20],
            list(polygons.dropped)[:20],
        )
    burned = rasterize_labels(polygons, shape=(height, width), transform=transform, epsg=epsg, nodata=scheme.nodata)
    labels = erode_labels(burned, params.erosion_radius, nodata=scheme.nodata)
    observed = np.asarray(dataset["valid_count"].values) > 0
    labels[~observed] = scheme.nodata  # no valid observation: nothing to learn from
    log.info(
        "labels: %d polygons -> %d labelled px (%d after erosion radius %d)",
        len(polygons.values), int((burned != 0).sum()), int((labels != 0).sum()), params.erosion_radius,
    )  # fmt: skip

    stats = WindowStats(labels, labelled_values(labels))
    layout, assignment, regions, placement, n_windows = _plan(labels, stats, params, forced)
    size, block_px, fill_classes = layout.size, layout.block_px, "count" in layout.auto
    chips = placement.chips
    for split in (TRAIN, VALIDATION):
        if not any(c.split == split for c in chips) and (split == TRAIN or params.val_fraction > 0 or forced):
            raise BadInputError(
                f"no {split} chip among {len(chips)}: the {split} blocks hold no window that passes the filters",
                fix="lower --block-size, change --val-fraction or --seed, or sample more chips (--count)",
            )
    names = channel_names(dataset)
    log.info(
        "%d chips (%d train, %d validation) from %d %s windows: %d moved clear of validation chips, %d dropped "
        "(no free position in their split nearby), %d added for classes a split lacked",
        len(chips), sum(c.split == TRAIN for c in chips), sum(c.split == VALIDATION for c in chips),
        n_windows, params.sampling, placement.shifted, placement.dropped, placement.added,
    )  # fmt: skip

    counts: dict[str, dict[int, int]] = {TRAIN: {}, VALIDATION: {}}
    band_sum = np.zeros(len(names))
    band_sq = np.zeros(len(names))
    band_n = np.zeros(len(names))
    with staged_output(output) as staged:
        collection = _collection(features_item, params, scheme, size)
        items = []
        reader = ChunkedWindowReader(dataset["features"])
        # GDAL compresses with the GIL released: writing chips on threads overlaps with reading the next.
        writers = ThreadPoolExecutor(max_workers=WRITE_THREADS)
        pending: deque[Future[pystac.Item]] = deque()
        order = sorted(range(len(chips)), key=lambda i: (chips[i].row, chips[i].col))
        for index in progress(order, total=len(order), what="chips", unit="chip"):
            chip = chips[index]
            values = reader.window(chip.row, chip.col, chip.size).reshape(-1, chip.size, chip.size)
            label = labels[chip.row : chip.row + chip.size, chip.col : chip.col + chip.size]
            present, pixels = np.unique(label[label != scheme.nodata], return_counts=True)
            for value, n in zip(present.tolist(), pixels.tolist(), strict=True):
                counts[chip.split][value] = counts[chip.split].get(value, 0) + n
            if chip.split == TRAIN:
                finite = np.isfinite(values)
                band_n += finite.sum(axis=(1, 2))
                band_sum += np.where(finite, values, 0.0).sum(axis=(1, 2), dtype=np.float64)
                band_sq += np.where(finite, values.astype(np.float64) ** 2, 0.0).sum(axis=(1, 2))
            if len(pending) >= WRITE_QUEUE:  # bound the chips held in memory while GDAL compresses
                items.append(pending.popleft().result())
            pending.append(
                writers.submit(
                    _chip_item, f"chip-{index:05d}", chip, values, label, staged.path / "chips",
                    features_item=features_item, transform=transform, epsg=epsg, names=names, scheme=scheme,
                )
            )  # fmt: skip
        items.extend(future.result() for future in pending)
        writers.shutdown()
        mean = band_sum / np.maximum(band_n, 1)
        std = np.sqrt(np.maximum(band_sq / np.maximum(band_n, 1) - mean**2, 0.0))
        warnings = _split_warnings(counts, scheme, stats=stats, regions=regions, block_px=block_px, filled=fill_classes)
        class_counts = {split: {str(k): v for k, v in sorted(c.items())} for split, c in counts.items()}
        for warning in warnings:
            log.warning("%s", warning)
        collection.extra_fields.update(
            {
                "deep-lulc:chip_size": size,
                "deep-lulc:block_size": layout.block_size,
                "deep-lulc:count": layout.count,
                "deep-lulc:auto": list(layout.auto),
                "deep-lulc:channels": names,
                "deep-lulc:features": [str(c) for c in dataset.channel.values.tolist()],
                "deep-lulc:dates": sorted({n.split("_", 1)[1] for n in names}),
                "deep-lulc:class_counts": class_counts,
                "deep-lulc:normalization": {"mean": mean.round(6).tolist(), "std": std.round(6).tolist()},
                "deep-lulc:split_warnings": warnings,
                "deep-lulc:chips": _chip_tally(chips, placement),
                "deep-lulc:labels": describe(polygons),
                "deep-lulc:classes": scheme.to_dict(),
            }
        )  # fmt: skip
        split_path = staged.path / "split.json"
        split_path.write_text(json.dumps({"block_size": layout.block_size, "chip_size": size,
                                          "blocks": assignment}, indent=2) + "\n")  # fmt: skip
        collection.add_asset(
            "split",
            pystac.Asset(str(split_path), title="Block -> split assignment (reusable with --split-file)",
                         media_type=pystac.MediaType.JSON, roles=["metadata"]),
        )  # fmt: skip
        collection.add_link(
            pystac.Link("derived_from", storage.redact(inputs["labels"]), media_type="application/octet-stream",
                        title="labels")
        )  # fmt: skip
        collection.add_items(sorted(items, key=lambda item: item.id))
        catalog = pystac.Catalog(id="chips", description="Training chips (deep-lulc chips)")
        catalog.add_child(collection)
        save_self_contained(catalog, staged.path)
        write_params_file(staged.path, stage=STAGE, inputs=inputs, params=_resolved(params, layout))
        catalog_href = staged.publish()
    return StageResult(
        stage=STAGE,
        catalog=catalog_href,
        items=tuple(item.id for item in items),
        extra={
            "train": sum(c.split == TRAIN for c in chips),
            "validation": sum(c.split == VALIDATION for c in chips),
            "class_counts": class_counts,
            "warnings": warnings,
            "chip_size": size,
            "count": layout.count,
            "block_size": layout.block_size,
            "auto": list(layout.auto),
            "shifted": placement.shifted,
            "dropped": placement.dropped,
            "added": placement.added,
        },
    )


def _plan(
    labels: np.ndarray, stats: WindowStats, params: ChipsParams, forced: ForcedSplit | None
) -> tuple[Layout, dict[str, str], SplitRegions, Placement, int]:
    """Chip size, count and blocks for this AOI, the block assignment, and where each chip goes."""
    height, width = labels.shape
    rng = np.random.default_rng(params.seed)
    layout = resolve_layout(
        stats.labelled, size=params.size, count=params.count, block_size=params.block_size,
        split_size=forced.chip_size if forced else None, split_block_size=forced.block_size if forced else None,
    )  # fmt: skip
    size, block_px = layout.size, layout.block_px
    if (
        forced is not None
        and forced.chip_size
        and forced.block_size
        and forced.chip_size * forced.block_size != block_px
    ):
        log.warning(
            "split file: made for blocks of %d px, these are %d px (--size %d x --block-size %d): its block ids "
            "name other places", forced.chip_size * forced.block_size, block_px, size, layout.block_size,
        )  # fmt: skip
    windows = candidate_windows(
        labels, mode=params.sampling, size=size, count=layout.count, min_labelled=params.min_labelled, rng=rng,
        stats=stats,
    )  # fmt: skip
    fill_classes = "count" in layout.auto  # an explicit --count is the number of windows drawn, no more
    if forced is not None:
        assignment = assign_blocks(
            -(-height // block_px), -(-width // block_px), val_fraction=0, rng=rng, forced=forced.blocks
        )
    else:
        assignment = stratified_assignment(
            windows, labels, size=size, block_px=block_px, val_fraction=params.val_fraction, rng=rng,
            min_labelled=params.min_labelled, stats=stats, fill_classes=fill_classes,
        )  # fmt: skip
    regions = SplitRegions(
        labels.shape, size=size, block_px=block_px, assignment=assignment, labelled_table=stats.labelled,
        min_labelled=params.min_labelled,
    )  # fmt: skip
    placement = place_windows(windows, regions, stats=stats if fill_classes else None)
    labelled_ids = labelled_block_ids(stats.labelled, block_px)
    n_val_blocks = sum(assignment.get(bid) == VALIDATION for bid in labelled_ids)
    log.info("%s", layout.describe(len(labelled_ids), n_val_blocks))
    return layout, assignment, regions, placement, len(windows)


def labelled_block_ids(labelled_table: np.ndarray, block_px: int) -> list[str]:
    rows, cols = np.nonzero(block_sums(labelled_table, block_px) > 0)
    return [block_id(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def _resolved(params: ChipsParams, layout: Layout) -> ChipsParams:
    """The params as run, the values chosen for this AOI filled in (params.json records how it was made)."""
    return params.model_copy(update={"size": layout.size, "count": layout.count, "block_size": layout.block_size})


def _chip_tally(chips: list[Chip], placement: Placement) -> dict[str, int]:
    return {
        TRAIN: sum(c.split == TRAIN for c in chips),
        VALIDATION: sum(c.split == VALIDATION for c in chips),
        "moved_by_split": placement.shifted,
        "dropped_by_split": placement.dropped,
        "added_for_classes": placement.added,
    }


def _split_warnings(
    counts: dict[str, dict[int, int]], scheme: ClassScheme, *, stats: WindowStats, regions: SplitRegions,
    block_px: int, filled: bool,
) -> list[str]:  # fmt: skip
    """A line per class missing (or down to a few pixels) in one split, saying whether the labels allow it
    in both at all."""
    warnings: list[str] = []
    enough = dict(zip(stats.values, presence_threshold(stats).tolist(), strict=True))
    splits = [TRAIN, VALIDATION] if (regions.grid == CODES[VALIDATION]).any() else [TRAIN]  # --val-fraction 0
    for cls in scheme.labelled:
        if cls.value not in enough:
            continue  # not in the labels of this AOI
        pixels_in = {split: counts[split].get(cls.value, 0) for split in (TRAIN, VALIDATION)}
        weak = [split for split in splits if pixels_in[split] < enough[cls.value]]
        if not weak:
            continue
        lack = weak[0]
        have = VALIDATION if lack == TRAIN else TRAIN
        if len(splits) == 1:
            warnings.append(f"class {cls.value} {cls.name} has only {pixels_in[lack]} px in training")
            continue
        words = {TRAIN: "training", VALIDATION: "validation"}
        blocks = block_sums(stats.per_class[cls.value], block_px)
        n_blocks, pixels = int((blocks > 0).sum()), int(blocks.sum())
        if len(weak) == len(splits) == 2:
            warnings.append(f"class {cls.value} {cls.name} is in neither split: no chip holds enough of its "
                            f"{pixels} labelled px ({n_blocks} blocks)")  # fmt: skip
            continue
        if pixels_in[lack] == 0:
            message = f"class {cls.value} {cls.name} is in {words[have]} but absent from {words[lack]}"
        else:
            message = f"class {cls.value} {cls.name} has only {pixels_in[lack]} px in {words[lack]}"
        reach = np.where(regions.valid[lack], all_window_sums(stats.per_class[cls.value], regions.size), 0)
        reachable = reach.size > 0 and reach.max() > 0
        if not reachable and n_blocks < 2:
            message += f": its {pixels} labelled px lie in one block, so it cannot be in both splits"
        elif not reachable:
            message += f": no {words[lack]} chip can hold it (its {pixels} labelled px lie in {n_blocks} blocks)"
        elif filled:
            message += f" (no {words[lack]} chip holds more than {int(reach.max())} px of it)"
        else:
            message += " (leave --count out to add a chip for it)"
        warnings.append(message)
    return warnings


def _collection(features_item: pystac.Item, params: ChipsParams, scheme: ClassScheme, size: int) -> pystac.Collection:
    collection = pystac.Collection(
        id="chips",
        title=f"Training chips {size} px ({params.sampling} sampling)",
        description="Feature windows and eroded LULC labels, split by spatial blocks into train and validation.",
        extent=pystac.Extent(
            pystac.SpatialExtent([list(features_item.bbox or [])]),
            pystac.TemporalExtent([[
                pystac.utils.str_to_datetime(str(features_item.properties["start_datetime"])),
                pystac.utils.str_to_datetime(str(features_item.properties["end_datetime"])),
            ]]),
        ),
        license="other",
        summaries=pystac.Summaries({"split": [TRAIN, VALIDATION]}),
    )  # fmt: skip
    collection.add_link(
        pystac.Link("derived_from", features_item.get_self_href() or features_item.id, media_type=pystac.MediaType.JSON)
    )
    return collection


def _chip_item(
    identifier: str,
    chip: Chip,
    values: np.ndarray,
    label: np.ndarray,
    folder: Path,
    *,
    features_item: pystac.Item,
    transform: Affine,
    epsg: int,
    names: list[str],
    scheme: ClassScheme,
) -> pystac.Item:
    chip_transform = transform * Affine.translation(chip.col, chip.row)
    directory = folder / identifier
    image_path = write_cog(directory / "image.tif", encode_image(values), transform=chip_transform, epsg=epsg,
                           nodata=IMAGE_NODATA, band_descriptions=names, scale=IMAGE_SCALE)  # fmt: skip
    colormap = {cls.value: (*cls.rgb, 255) for cls in scheme.classes}
    label_path = write_cog(directory / "label.tif", label, transform=chip_transform, epsg=epsg, nodata=scheme.nodata,
                           overview_resampling="nearest", colormap=colormap)  # fmt: skip
    preview_path = directory / "preview.png"
    label_preview(values, label, scheme, names, preview_path)
    x0, y0 = chip_transform.c, chip_transform.f
    x1, y1 = x0 + chip_transform.a * chip.size, y0 + chip_transform.e * chip.size
    footprint = bounds_to_wgs84(epsg, (x0, y1, x1, y0), segments=1)
    item = pystac.Item(
        id=identifier,
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={
            "start_datetime": features_item.properties["start_datetime"],
            "end_datetime": features_item.properties["end_datetime"],
            "split": chip.split,
            "deep-lulc:block": chip.block,
            "deep-lulc:window": {"row": chip.row, "col": chip.col, "size": chip.size},
            "proj:code": f"EPSG:{epsg}",
            "proj:shape": [chip.size, chip.size],
            "proj:transform": list(chip_transform)[:6],
            "label:type": "raster",
            "label:tasks": ["segmentation"],
            "label:properties": None,
            "label:description": "LULC class per pixel, eroded; 0 = no label",
            "label:classes": [{"name": None, "classes": [c.value for c in scheme.labelled]}],
        },
        stac_extensions=[
            LABEL_EXTENSION,
            CLASSIFICATION_EXTENSION,
            EO_EXTENSION,
            RASTER_EXTENSION,
            PROJECTION_EXTENSION,
        ],
    )
    band_info: dict[str, Any] = {"nodata": IMAGE_NODATA, "data_type": "int16", "scale": IMAGE_SCALE, "offset": 0.0}
    item.add_asset(
        "image",
        pystac.Asset(str(image_path), title="Features x dates", media_type=GEOTIFF_MEDIA_TYPE, roles=["data"],
                     extra_fields={"eo:bands": [{"name": name} for name in names],
                                   "raster:bands": [dict(band_info) for _ in names]}),
    )  # fmt: skip
    item.add_asset(
        "label",
        pystac.Asset(str(label_path), title="LULC labels", media_type=GEOTIFF_MEDIA_TYPE, roles=["labels"],
                     extra_fields={"classification:classes": scheme.to_classification(),
                                   "raster:bands": [{"nodata": scheme.nodata, "data_type": "uint8"}]}),
    )  # fmt: skip
    item.add_asset("preview", pystac.Asset(str(preview_path), title="Image and labels", media_type=PNG_MEDIA_TYPE,
                                           roles=["thumbnail"]))  # fmt: skip
    stamp_provenance(item, derived_from=[features_item.get_self_href() or features_item.id])
    return item

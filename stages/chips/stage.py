"""`deep-lulc chips`: labels onto the features grid, eroded; windows sampled and split; one STAC item per chip."""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pystac

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.erosion import erode_labels
from deep_lulc.shared.geo.grids import epsg_of, geobox_of
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.labels import describe, load_class_map, rasterize_labels, read_labels
from deep_lulc.shared.products.chips import ChipsSummary, channel_names, write_chip, write_chips_catalog
from deep_lulc.shared.products.features import open_features
from deep_lulc.shared.stage.contract import StageResult, write_params_file
from deep_lulc.shared.stage.progress import progress
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.chips.auto import Layout, resolve_layout
from deep_lulc.stages.chips.params import ChipsInputs, ChipsParams
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
WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
WRITE_QUEUE = 2 * WRITE_THREADS
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: ChipsInputs, output: str, params: ChipsParams) -> StageResult:
    """Cut chips from `inputs.features` labelled by `inputs.labels` into `output`."""
    scheme = load_class_scheme(params.classes)
    class_map = load_class_map(params.class_map)
    forced = read_split_file(params.split_file) if params.split_file else None
    features_item, dataset = open_features(inputs.features)
    grid = geobox_of(features_item)
    epsg, transform = epsg_of(grid), grid.affine
    height, width = dataset.sizes["y"], dataset.sizes["x"]

    polygons = read_labels(
        inputs.labels, class_column=params.class_column, scheme=scheme, class_map=class_map, target_epsg=epsg
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
        len(polygons.values),
        int((burned != 0).sum()),
        int((labels != 0).sum()),
        params.erosion_radius,
    )

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
    dates = [str(np.datetime_as_string(t, unit="D")) for t in dataset.time.values]
    names = channel_names([str(c) for c in dataset.channel.values.tolist()], dates)
    log.info(
        "%d chips (%d train, %d validation) from %d %s windows: %d moved clear of validation chips, %d dropped "
        "(no free position in their split nearby), %d added for classes a split lacked",
        len(chips),
        sum(c.split == TRAIN for c in chips),
        sum(c.split == VALIDATION for c in chips),
        n_windows,
        params.sampling,
        placement.shifted,
        placement.dropped,
        placement.added,
    )

    counts: dict[str, dict[int, int]] = {TRAIN: {}, VALIDATION: {}}
    band_sum = np.zeros(len(names))
    band_sq = np.zeros(len(names))
    band_n = np.zeros(len(names))
    with staged_output(output) as staged:
        items = []
        reader = ChunkedWindowReader(dataset["features"])
        # GDAL compresses with the GIL released: writing chips on threads overlaps with reading the next.
        writers = ThreadPoolExecutor(max_workers=WRITE_THREADS)
        pending: deque[Future[pystac.Item]] = deque()
        try:
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
                        write_chip,
                        staged.path / "chips",
                        f"chip-{index:05d}",
                        values,
                        label,
                        features_grid=grid,
                        row=chip.row,
                        col=chip.col,
                        split=chip.split,
                        block=chip.block,
                        features_item=features_item,
                        channels=names,
                        scheme=scheme,
                    )
                )
            items.extend(future.result() for future in pending)
        finally:  # on a failure too: writers still running would refill the staging folder after its removal
            writers.shutdown(wait=True, cancel_futures=True)
        mean = band_sum / np.maximum(band_n, 1)
        std = np.sqrt(np.maximum(band_sq / np.maximum(band_n, 1) - mean**2, 0.0))
        warnings = _split_warnings(counts, scheme, stats=stats, regions=regions, block_px=block_px, filled=fill_classes)
        class_counts = {split: {str(k): v for k, v in sorted(c.items())} for split, c in counts.items()}
        for warning in warnings:
            log.warning("%s", warning)
        summary = ChipsSummary(
            sampling=params.sampling,
            chip_size=size,
            block_size=layout.block_size,
            count=layout.count,
            auto=list(layout.auto),
            channels=names,
            features=[str(c) for c in dataset.channel.values.tolist()],
            class_counts=class_counts,
            mean=mean,
            std=std,
            split_warnings=warnings,
            tally=_chip_tally(chips, placement),
            labels=describe(polygons),
            scheme=scheme,
        )
        split_path = staged.path / "split.json"
        split_path.write_text(
            json.dumps({"block_size": layout.block_size, "chip_size": size, "blocks": assignment}, indent=2) + "\n"
        )
        write_chips_catalog(
            staged.path,
            features_item=features_item,
            summary=summary,
            items=items,
            split_path=split_path,
            labels_href=inputs.labels,
        )
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
        stats.labelled,
        size=params.size,
        count=params.count,
        block_size=params.block_size,
        split_size=forced.chip_size if forced else None,
        split_block_size=forced.block_size if forced else None,
    )
    size, block_px = layout.size, layout.block_px
    if (
        forced is not None
        and forced.chip_size
        and forced.block_size
        and forced.chip_size * forced.block_size != block_px
    ):
        log.warning(
            "split file: made for blocks of %d px, these are %d px (--size %d x --block-size %d): its block ids "
            "name other places",
            forced.chip_size * forced.block_size,
            block_px,
            size,
            layout.block_size,
        )
    windows = candidate_windows(
        labels,
        mode=params.sampling,
        size=size,
        count=layout.count,
        min_labelled=params.min_labelled,
        rng=rng,
        stats=stats,
    )
    fill_classes = "count" in layout.auto  # an explicit --count is the number of windows drawn, no more
    if forced is not None:
        assignment = assign_blocks(
            -(-height // block_px), -(-width // block_px), val_fraction=0, rng=rng, forced=forced.blocks
        )
    else:
        assignment = stratified_assignment(
            windows,
            labels,
            size=size,
            block_px=block_px,
            val_fraction=params.val_fraction,
            rng=rng,
            min_labelled=params.min_labelled,
            stats=stats,
            fill_classes=fill_classes,
        )
    regions = SplitRegions(
        labels.shape,
        size=size,
        block_px=block_px,
        assignment=assignment,
        labelled_table=stats.labelled,
        min_labelled=params.min_labelled,
    )
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
    counts: dict[str, dict[int, int]],
    scheme: ClassScheme,
    *,
    stats: WindowStats,
    regions: SplitRegions,
    block_px: int,
    filled: bool,
) -> list[str]:
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
            warnings.append(
                f"class {cls.value} {cls.name} is in neither split: no chip holds enough of its "
                f"{pixels} labelled px ({n_blocks} blocks)"
            )
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

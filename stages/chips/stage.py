"""`deep-lulc chips`: labels onto the features grid, eroded; windows sampled and split; one STAC item per chip."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.erosion import erode_labels
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox_of
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.labels import LabelPolygons, describe, load_class_map, rasterize_labels, read_labels
from deep_lulc.shared.products.chips import CHIPS_FOLDER, ChipsSummary, channel_names, write_chips_catalog
from deep_lulc.shared.products.features import open_features
from deep_lulc.shared.stage.contract import StageResult, write_params_file
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.chips.auto import Layout, resolve_layout
from deep_lulc.stages.chips.coverage import split_warnings
from deep_lulc.stages.chips.params import ChipsInputs, ChipsParams
from deep_lulc.stages.chips.sampling import (
    TRAIN,
    VALIDATION,
    Chip,
    ForcedSplit,
    Placement,
    SplitRegions,
    assign_blocks,
    block_id,
    place_windows,
    read_split_file,
    stratified_assignment,
)
from deep_lulc.stages.chips.windows import WindowStats, block_sums, candidate_windows, labelled_values
from deep_lulc.stages.chips.writing import Tally, write_chips, write_split_file

STAGE = "chips"
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: ChipsInputs, output: str, params: ChipsParams) -> StageResult:
    """Cut chips from `inputs.features` labelled by `inputs.labels` into `output`."""
    scheme = load_class_scheme(params.classes)
    class_map = load_class_map(params.class_map)
    forced = read_split_file(params.split_file) if params.split_file else None
    features_item, dataset = open_features(inputs.features)
    grid = geobox_of(features_item)
    polygons = read_labels(
        inputs.labels, class_column=params.class_column, scheme=scheme, class_map=class_map, target_epsg=epsg_of(grid)
    )
    labels = _label_grid(polygons, dataset, grid, scheme=scheme, erosion_radius=params.erosion_radius)

    stats = WindowStats(labels, labelled_values(labels))
    layout, assignment, regions, placement, n_windows = _plan(labels, stats, params, forced)
    _require_both_splits(placement.chips, params, forced)
    names = channel_names(_features_of(dataset), _dates_of(dataset))
    _log_placement(placement, n_windows, params.sampling)

    with staged_output(output) as staged:
        items, tally = write_chips(
            staged.path / CHIPS_FOLDER,
            placement.chips,
            dataset["features"],
            labels,
            features_item=features_item,
            grid=grid,
            channels=names,
            scheme=scheme,
        )
        filled = "count" in layout.auto
        warnings = split_warnings(
            tally.pixels, scheme, stats=stats, regions=regions, block_px=layout.block_px, filled=filled
        )
        for warning in warnings:
            log.warning("%s", warning)
        summary = _summary(params, layout, dataset, names, tally, warnings, placement, polygons, scheme)
        write_chips_catalog(
            staged.path,
            features_item=features_item,
            summary=summary,
            items=items,
            split_path=write_split_file(staged.path, layout, assignment),
            labels_href=inputs.labels,
        )
        write_params_file(staged.path, stage=STAGE, inputs=inputs, params=_resolved(params, layout))
        catalog_href = staged.publish()
    return StageResult(
        stage=STAGE, catalog=catalog_href, items=tuple(item.id for item in items), extra=_extra(summary, placement)
    )


def _label_grid(
    polygons: LabelPolygons, dataset: xr.Dataset, grid: GeoBox, *, scheme: ClassScheme, erosion_radius: int
) -> np.ndarray:
    """The labels burnt onto the features grid and eroded (edge pixels mix classes), NoData wherever the
    features hold no valid observation: nothing to learn from there."""
    if polygons.repaired or polygons.dropped:
        log.warning(
            "labels: repaired invalid geometries of features %s; dropped empty or unusable features %s",
            list(polygons.repaired)[:20],
            list(polygons.dropped)[:20],
        )
    shape = (dataset.sizes["y"], dataset.sizes["x"])
    burned = rasterize_labels(polygons, shape=shape, transform=grid.affine, epsg=epsg_of(grid), nodata=scheme.nodata)
    labels = erode_labels(burned, erosion_radius, nodata=scheme.nodata)
    observed = np.asarray(dataset["valid_count"].values) > 0
    labels[~observed] = scheme.nodata
    log.info(
        "labels: %d polygons -> %d labelled px (%d after erosion radius %d)",
        len(polygons.values),
        int((burned != 0).sum()),
        int((labels != 0).sum()),
        erosion_radius,
    )
    return labels


def _features_of(dataset: xr.Dataset) -> list[str]:
    return [str(c) for c in dataset.channel.values.tolist()]


def _dates_of(dataset: xr.Dataset) -> list[str]:
    return [str(np.datetime_as_string(t, unit="D")) for t in dataset.time.values]


def _require_both_splits(chips: list[Chip], params: ChipsParams, forced: ForcedSplit | None) -> None:
    """No training chip is always an error; no validation chip only where validation was asked for."""
    for split in (TRAIN, VALIDATION):
        if not any(c.split == split for c in chips) and (split == TRAIN or params.val_fraction > 0 or forced):
            raise BadInputError(
                f"no {split} chip among {len(chips)}: the {split} blocks hold no window that passes the filters",
                fix="lower --block-size, change --val-fraction or --seed, or sample more chips (--count)",
            )


def _log_placement(placement: Placement, n_windows: int, sampling: str) -> None:
    chips = placement.chips
    log.info(
        "%d chips (%d train, %d validation) from %d %s windows: %d moved clear of validation chips, %d dropped "
        "(no free position in their split nearby), %d added for classes a split lacked",
        len(chips),
        sum(c.split == TRAIN for c in chips),
        sum(c.split == VALIDATION for c in chips),
        n_windows,
        sampling,
        placement.shifted,
        placement.dropped,
        placement.added,
    )


def _summary(
    params: ChipsParams,
    layout: Layout,
    dataset: xr.Dataset,
    names: list[str],
    tally: Tally,
    warnings: list[str],
    placement: Placement,
    polygons: LabelPolygons,
    scheme: ClassScheme,
) -> ChipsSummary:
    """What the collection records of how the chips were cut, and the training statistics `train` reads."""
    mean, std = tally.mean_std()
    return ChipsSummary(
        sampling=params.sampling,
        chip_size=layout.size,
        block_size=layout.block_size,
        count=layout.count,
        auto=list(layout.auto),
        channels=names,
        features=_features_of(dataset),
        class_counts=tally.class_counts(),
        mean=mean,
        std=std,
        split_warnings=warnings,
        tally=_chip_tally(placement.chips, placement),
        labels=describe(polygons),
        scheme=scheme,
    )


def _extra(summary: ChipsSummary, placement: Placement) -> dict[str, object]:
    return {
        "train": summary.tally[TRAIN],
        "validation": summary.tally[VALIDATION],
        "class_counts": summary.class_counts,
        "warnings": summary.split_warnings,
        "chip_size": summary.chip_size,
        "count": summary.count,
        "block_size": summary.block_size,
        "auto": list(summary.auto),
        "shifted": placement.shifted,
        "dropped": placement.dropped,
        "added": placement.added,
    }


def _plan(
    labels: np.ndarray, stats: WindowStats, params: ChipsParams, forced: ForcedSplit | None
) -> tuple[Layout, dict[str, str], SplitRegions, Placement, int]:
    """Chip size, count and blocks for this AOI, the block assignment, and where each chip goes."""
    height, width = labels.shape
    rng = np.random.default_rng(params.seed)
    layout = resolve_layout(
        stats.labelled,
        size=_given(params.size),
        count=_given(params.count),
        block_size=_given(params.block_size),
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


def _given(value: int | str | None) -> int | None:
    """A layout number as given; None where it is to be chosen (the params model reads "auto" as None)."""
    return value if isinstance(value, int) else None


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

"""`deep-lulc change`: compare two class maps pixel by pixel into a transition map and an area matrix.

Both maps are read window by window, so memory is set by `--block-size`, not by the map. A map on another
grid is resampled onto the `--before` grid by nearest neighbour (class codes must not be averaged), and
the result says so: areas of a resampled comparison carry the resampling's edge effects.

`--method raw` reports every pixel whose two classes differ; two maps classified independently disagree
along every parcel border and wherever a class flickers, so that overstates change several times over.
`--method joint` (the default) decides with both periods' class probabilities and a minimum mapping unit
(see joint.py); maps written without `--probabilities` count their classes as certain, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject, transform_bounds

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo import grids
from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.geo.windows import PixelWindow, blocks
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.lulc.classes import ClassScheme, load_class_scheme
from deep_lulc.shared.lulc.transitions import (
    NODATA_CODE,
    TRANSITION_FORMULA,
    TransitionCoding,
    class_indices,
    scheme_difference,
)
from deep_lulc.shared.products.change import change_item, change_writer, write_matrix_files, write_thumbnail
from deep_lulc.shared.products.class_map import (
    PROBABILITIES_ASSET,
    PROBABILITY_NODATA,
    ClassMap,
    CogAsset,
    open_class_map,
)
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.change.joint import JointRule, as_probabilities, clean, decide, one_hot, stable_class, unit_pixels
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams

STAGE = "change"
MAX_HALO = 4096
TOP_TRANSITIONS = 5
ID_LIMIT = 120
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: ChangeInputs, output: str, params: ChangeParams) -> StageResult:
    """Transitions from the map at `inputs.before` to the map at `inputs.after`, written to `output`."""
    before = open_class_map(inputs.before, made_by="predict")
    after = open_class_map(inputs.after, made_by="predict")
    scheme = common_scheme(before.scheme, after.scheme, params.classes)
    start, end = _period(before.item, after.item)
    grid = before.grid
    area_m2 = pixel_area_m2(grid)
    resampled = not same_grid(grid, after.grid)
    if resampled:
        log.warning(
            "the --after map's grid (EPSG:%d, %dx%d px) differs from the --before map's (EPSG:%d, %dx%d px): "
            "resampling --after onto the --before grid by nearest neighbour",
            epsg_of(after.grid),
            after.grid.width,
            after.grid.height,
            epsg_of(grid),
            grid.width,
            grid.height,
        )
        _require_overlap(grid, after.grid)
    coding = TransitionCoding(scheme)
    identifier = change_id(before.item.id, after.item.id)
    rule, method = decision_rule(params, before, after, coding, area_m2)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        counts, raw_counts = _write_transitions(folder, before, after, coding, params.block_size, resampled, rule)
        pixels = counts[1:].reshape(coding.n, coding.n)
        raw_pixels = raw_counts[1:].reshape(coding.n, coding.n)
        raw_changed_ha = round(float(raw_pixels.sum() - np.trace(raw_pixels)) * area_m2 / 10_000, 6)
        method["raw_changed_ha"] = raw_changed_ha
        if not pixels.any():
            raise BadInputError(
                "no pixel has a class in both maps (they do not overlap, or one is all nodata)",
                fix="pass two maps of the same area",
            )
        summary = area_summary(pixels, coding, area_m2)
        write_matrix_files(folder, summary)
        write_thumbnail(folder, coding, title=f"{before.item.id} -> {after.item.id}")
        item = change_item(
            identifier,
            folder=folder,
            footprint=before.item,
            grid=grid,
            period=(_iso(start), _iso(end)),
            coding=coding,
            counts=counts,
            properties={
                "deep-lulc:resampled": resampled,
                "deep-lulc:changed_fraction": summary["changed_fraction"],
                "deep-lulc:change_method": method,
            },
            derived_from=[_item_href(before, inputs.before), _item_href(after, inputs.after)],
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="change",
            description=f"Land-cover change {before.item.id} -> {after.item.id}",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    log.info(
        "%.2f ha of %.2f ha changed (%.2f%%)%s, method %s (a pixel-by-pixel comparison: %.2f ha)",
        summary["changed_ha"],
        summary["changed_ha"] + summary["stable_ha"],
        100 * summary["changed_fraction"],
        " after resampling" if resampled else "",
        params.method,
        raw_changed_ha,
    )
    extra = {
        "changed_fraction": summary["changed_fraction"],
        "changed_ha": summary["changed_ha"],
        "net_change_ha": summary["net_change_ha"],
        "top_transitions": top_transitions(pixels, coding, area_m2),
        "resampled": resampled,
        "method": params.method,
        "raw_changed_ha": raw_changed_ha,
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)


def decision_rule(
    params: ChangeParams, before: ClassMap, after: ClassMap, coding: TransitionCoding, area_m2: float
) -> tuple[JointRule | None, dict[str, Any]]:
    """The joint rule (None for --method raw) and the record of it the item carries."""
    if params.method == "raw":
        return None, {"method": "raw"}
    present = {key: probabilities_of(m, coding) is not None for key, m in (("before", before), ("after", after))}
    missing = [f"--{key}" for key, found in present.items() if not found]
    if missing:
        log.warning(
            "%s %s no '%s' asset: comparing %s classes as certain (run `deep-lulc predict --probabilities` "
            "for a joint decision that weighs how sure each period is)",
            " and ".join(missing),
            "has" if len(missing) == 1 else "have",
            PROBABILITIES_ASSET,
            "its" if len(missing) == 1 else "their",
        )
    rule = JointRule(
        same_below=params.same_class_below,
        min_confidence=params.min_confidence,
        opening_radius=params.opening_radius,
        unit_pixels=unit_pixels(params.min_mapping_unit, area_m2),
    )
    if rule.halo > MAX_HALO:
        raise BadInputError(
            f"--min-mapping-unit {params.min_mapping_unit} ha is {rule.unit_pixels} px of this grid, more than "
            f"the {MAX_HALO} px a window may read around itself",
            fix="pass a smaller --min-mapping-unit, or compare maps on a coarser grid",
        )
    return rule, rule.record(unit_ha=params.min_mapping_unit, probabilities=present)


def probabilities_of(class_map: ClassMap, coding: TransitionCoding) -> CogAsset | None:
    """The map's class-probability COG, if its item has one; one that lists other classes is refused."""
    asset = class_map.probabilities()
    if asset is None:
        return None
    names = asset.band_names()
    expected = [c.name for c in coding.classes]
    if asset.bands and names != expected:
        raise BadInputError(
            f"the '{PROBABILITIES_ASSET}' asset of {class_map.item.id} has bands {names}, not the classes {expected}",
            fix="pass maps written by `deep-lulc predict --probabilities`, or --method raw",
        )
    return asset


def common_scheme(before: ClassScheme, after: ClassScheme, classes_file: str | None) -> ClassScheme:
    """The one scheme both maps use; a file given with --classes must agree with them and lends its colours."""
    difference = scheme_difference(before, after)
    if difference:
        raise BadInputError(
            f"the --before and --after maps use different class schemes ({difference})",
            fix="compare maps predicted with the same class scheme",
        )
    if classes_file is None:
        return before
    declared = load_class_scheme(classes_file)
    difference = scheme_difference(declared, before)
    if difference:
        raise BadInputError(
            f"--classes {classes_file} does not match the maps' class scheme ({difference})",
            fix="pass the scheme the maps were predicted with, or leave out --classes",
        )
    return declared


def same_grid(first: GeoBox, second: GeoBox) -> bool:
    return (
        epsg_of(first) == epsg_of(second)
        and (first.height, first.width) == (second.height, second.width)
        and first.affine.almost_equals(second.affine, precision=1e-6)
    )


def pixel_area_m2(grid: GeoBox) -> float:
    """Pixel area in square metres; areas in degrees² would be meaningless, so a geographic grid is refused."""
    epsg = epsg_of(grid)
    crs = pyproj.CRS.from_epsg(epsg)
    if crs.is_geographic:
        raise BadInputError(
            f"the --before map is on a geographic grid (EPSG:{epsg}), where pixels have no fixed area",
            fix="predict onto a projected grid (e.g. UTM)",
        )
    metres = float(crs.axis_info[0].unit_conversion_factor)
    return grids.pixel_area_m2(grid) * metres * metres


def change_id(before: str, after: str) -> str:
    """`change-<before>-to-<after>`; overlong ids are shortened and keep a digest of the full one."""
    identifier = f"change-{before}-to-{after}"
    if len(identifier) <= ID_LIMIT:
        return identifier
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
    keep = (ID_LIMIT - len("change--to--") - len(digest)) // 2
    return f"change-{before[:keep]}-to-{after[:keep]}-{digest}"


def _period(before: pystac.Item, after: pystac.Item) -> tuple[dt.datetime, dt.datetime]:
    start = before.common_metadata.start_datetime or before.datetime
    end = after.common_metadata.end_datetime or after.datetime
    if start is None or end is None:
        raise BadInputError(
            "the maps lack start_datetime/end_datetime", fix="pass items written by `deep-lulc predict`"
        )
    if start > end:
        raise BadInputError(
            f"the --before map starts ({_iso(start)}) after the --after map ends ({_iso(end)})",
            fix="swap --before and --after",
        )
    after_start = after.common_metadata.start_datetime or after.datetime
    if after_start is not None and after_start < start:
        log.warning("the --after map's period starts before the --before map's: are the two swapped?")
    return start, end


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _require_overlap(grid: GeoBox, other: GeoBox) -> None:
    west, south, east, north = other.boundingbox
    left, bottom, right, top = transform_bounds(
        CRS.from_epsg(epsg_of(other)), CRS.from_epsg(epsg_of(grid)), west, south, east, north
    )
    x0, y0, x1, y1 = grid.boundingbox
    if left >= x1 or right <= x0 or bottom >= y1 or top <= y0:
        raise BadInputError("the --before and --after maps do not overlap", fix="pass two maps of the same area")


def _check_shape(dataset: Any, grid: GeoBox, option: str) -> None:
    if (dataset.height, dataset.width) != (grid.height, grid.width):
        raise BadInputError(
            f"the {option} raster is {dataset.width}x{dataset.height} px but its item says {grid.width}x{grid.height}",
            fix="pass an item written by `deep-lulc predict`",
        )


class _Period:
    """One map opened for reading on the --before grid: its classes and, if it has them, probabilities."""

    def __init__(
        self,
        class_map: ClassMap,
        coding: TransitionCoding,
        grid: GeoBox,
        *,
        option: str,
        resampled: bool,
        probabilities: CogAsset | None,
    ) -> None:
        self.coding, self.grid, self.option, self.resampled = coding, grid, option, resampled
        self.stack = contextlib.ExitStack()
        self.classes = self.stack.enter_context(class_map.open())
        _check_shape(self.classes, class_map.grid, option)
        self.probabilities = None
        if probabilities is not None:
            self.probabilities = self.stack.enter_context(probabilities.open())
            _check_shape(self.probabilities, class_map.grid, f"{option} probabilities")
            if self.probabilities.count != coding.n:
                raise BadInputError(
                    f"the {option} probabilities have {self.probabilities.count} bands for {coding.n} classes",
                    fix="pass maps written by `deep-lulc predict --probabilities`, or --method raw",
                )

    def close(self) -> None:
        self.stack.close()

    def read(self, window: PixelWindow) -> np.ndarray:
        """Class values of `window` of the --before grid."""
        if not self.resampled:
            return np.asarray(self.classes.read(1, window=window.rasterio()))
        return _resample(self.classes, self._target(window), nodata=self.coding.scheme.nodata)

    def likelihoods(self, window: PixelWindow, indices: np.ndarray) -> np.ndarray:
        """(n, rows, cols) class probabilities; the mapped class as certain for a map without them."""
        if self.probabilities is None:
            return one_hot(indices, self.coding.n)
        if self.resampled:
            percent = _resample(
                self.probabilities,
                self._target(window),
                nodata=PROBABILITY_NODATA,
                bands=list(range(1, self.coding.n + 1)),
            )
        else:
            percent = np.asarray(self.probabilities.read(window=window.rasterio()))
        return as_probabilities(percent, indices, nodata=PROBABILITY_NODATA)

    def _target(self, window: PixelWindow) -> GeoBox:
        return self.grid[window.slices]


def _write_transitions(
    folder: Path,
    before: ClassMap,
    after: ClassMap,
    coding: TransitionCoding,
    size: int,
    resampled: bool,
    rule: JointRule | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stream both maps into the transition COG; returns the pixel count of every code, as written and as a
    pixel-by-pixel comparison would have written it."""
    grid = before.grid
    counts = np.zeros(coding.codes, dtype=np.int64)
    raw_counts = np.zeros(coding.codes, dtype=np.int64)
    writer = change_writer(folder, grid, coding)
    periods: list[_Period] = []
    try:
        for class_map, option, other_grid in ((before, "--before", False), (after, "--after", resampled)):
            found = None if rule is None else probabilities_of(class_map, coding)
            periods.append(_Period(class_map, coding, grid, option=option, resampled=other_grid, probabilities=found))
        first, second = periods
        for window in blocks(grid.height, grid.width, size):
            old, new = first.read(window), second.read(window)
            raw = coding.encode(old, new)
            raw_counts += np.bincount(raw.ravel(), minlength=coding.codes)
            codes = raw if rule is None else _joint_codes(window, old, new, first, second, coding, size, rule)
            counts += np.bincount(codes.ravel(), minlength=coding.codes)
            writer.write(codes, row=window.row, col=window.col)
    except BaseException:
        writer.abandon()
        raise
    finally:
        for period in reversed(periods):  # GDAL environments nest: the last opened closes first
            period.close()
    writer.finish()
    return counts, raw_counts


def _joint_codes(
    window: PixelWindow,
    old: np.ndarray,
    new: np.ndarray,
    first: _Period,
    second: _Period,
    coding: TransitionCoding,
    size: int,
    rule: JointRule,
) -> np.ndarray:
    """Transition codes of one window by the joint rule, cleaned with the halo the rule needs.

    The halo is decided tile by tile on the same block grid as the windows, so memory stays one block of
    probabilities plus one boolean mask, however large the mapping unit makes the halo.
    """
    before = class_indices(old, coding.scheme, what="the --before map")
    after = class_indices(new, coding.scheme, what="the --after map")
    p_before, p_after = first.likelihoods(window, before), second.likelihoods(window, after)
    changed, origin, target = decide(before, after, p_before, p_after, rule)
    if changed.any() and (rule.opening_radius > 0 or rule.unit_pixels > 1):
        row, col, height, width = window.row, window.col, window.height, window.width
        grid = first.grid
        top, left = max(0, row - rule.halo), max(0, col - rule.halo)
        bottom, right = min(grid.height, row + height + rule.halo), min(grid.width, col + width + rule.halo)
        mask = np.zeros((bottom - top, right - left), dtype=bool)
        for tile in _tiles(top, bottom, left, right, size):
            t_row, t_col = tile.row, tile.col
            rows = slice(t_row - top, t_row - top + tile.height)
            cols = slice(t_col - left, t_col - left + tile.width)
            if (t_row, t_col) == (row, col):
                mask[rows, cols] = changed
                continue
            tile_before = class_indices(first.read(tile), coding.scheme, what="the --before map")
            tile_after = class_indices(second.read(tile), coding.scheme, what="the --after map")
            mask[rows, cols] = decide(
                tile_before,
                tile_after,
                first.likelihoods(tile, tile_before),
                second.likelihoods(tile, tile_after),
                rule,
            )[0]
        kept = clean(mask, rule, margin=(row - top, bottom - row - height, col - left, right - col - width))
        dropped = changed & ~kept
        if dropped.any():
            shared = stable_class(p_before, p_after, before)
            origin[dropped] = shared[dropped]
            target[dropped] = shared[dropped]
    valid = origin >= 0
    return np.where(valid, 1 + origin * coding.n + target, NODATA_CODE).astype(coding.dtype)


def _tiles(top: int, bottom: int, left: int, right: int, size: int) -> list[PixelWindow]:
    """The windows of the `size` block grid that meet rows top..bottom-1 and cols left..right-1, clipped."""
    tiles = []
    for row in range(top - top % size, bottom, size):
        for col in range(left - left % size, right, size):
            r0, c0 = max(row, top), max(col, left)
            tiles.append(PixelWindow.at(r0, c0, min(row + size, bottom) - r0, min(col + size, right) - c0))
    return tiles


def _resample(dataset: Any, target: GeoBox, *, nodata: int, bands: list[int] | None = None) -> np.ndarray:
    """The part of `dataset` under `target`, nearest neighbour; GDAL reads only the source window it needs.
    One band as (rows, cols), or `bands` as (bands, rows, cols)."""
    shape = (target.height, target.width) if bands is None else (len(bands), target.height, target.width)
    destination = np.full(shape, nodata, dtype=dataset.dtypes[0])
    reproject(
        source=rasterio.band(dataset, 1 if bands is None else bands),
        destination=destination,
        src_transform=dataset.transform,
        src_crs=dataset.crs,
        src_nodata=nodata if dataset.nodata is None else dataset.nodata,
        dst_transform=target.affine,
        dst_crs=CRS.from_epsg(epsg_of(target)),
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    return destination


def area_summary(pixels: np.ndarray, coding: TransitionCoding, area_m2: float) -> dict[str, Any]:
    """The matrix_json document: the matrix in hectares and pixels, net change per class, changed share."""
    hectares = pixels.astype(np.float64) * area_m2 / 10_000
    names = [c.name for c in coding.classes]
    stable = float(np.trace(hectares))
    changed = float(pixels.sum() - np.trace(pixels)) * area_m2 / 10_000  # from counts: no -0.0 when none changed
    net = hectares.sum(axis=0) - hectares.sum(axis=1)
    return {
        "classes": names,
        "hectares": np.round(hectares, 6).tolist(),
        "pixels": pixels.astype(np.int64).tolist(),
        "pixel_area_m2": area_m2,
        "net_change_ha": {name: round(float(v), 6) for name, v in zip(names, net, strict=True)},
        "changed_ha": round(changed, 6),
        "stable_ha": round(stable, 6),
        "changed_fraction": round(changed / (changed + stable), 6),
        "transition_code": TRANSITION_FORMULA,
    }


def top_transitions(pixels: np.ndarray, coding: TransitionCoding, area_m2: float) -> list[dict[str, Any]]:
    """The largest changes by area, biggest first."""
    off_diagonal = pixels.astype(np.int64).copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:TOP_TRANSITIONS]
    rows = []
    for flat in order:
        i, j = divmod(int(flat), coding.n)
        if off_diagonal[i, j] == 0:
            break
        rows.append(
            {
                "from": coding.classes[i].name,
                "to": coding.classes[j].name,
                "ha": round(float(off_diagonal[i, j]) * area_m2 / 10_000, 6),
            }
        )
    return rows


def _item_href(class_map: ClassMap, fallback: str) -> str:
    return class_map.item.get_self_href() or storage.normalize_href(fallback)

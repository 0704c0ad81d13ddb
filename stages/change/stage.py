"""`deep-lulc change`: compare two class maps pixel by pixel into a transition map and an area matrix.

Both maps are read window by window, so memory is set by `--block-size`, not by the map. A map on another
grid is resampled onto the `--before` grid by nearest neighbour (class codes must not be averaged), and
the result says so: areas of a resampled comparison carry the resampling's edge effects.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pystac
import rasterio
from rasterio.crs import CRS
from rasterio.transform import array_bounds
from rasterio.warp import Resampling, reproject, transform_bounds

from deep_lulc.shared import storage
from deep_lulc.shared.class_maps import (
    CLASSIFICATION_EXTENSION,
    PROJECTION_EXTENSION,
    RASTER_EXTENSION,
    ClassMap,
    ClassMapWriter,
    Grid,
    decimated,
    legend_png,
    open_class_map,
)
from deep_lulc.shared.classes import ClassScheme, LulcClass, load_class_scheme
from deep_lulc.shared.cog import COG_MEDIA_TYPE
from deep_lulc.shared.contract import StageResult, finish_single_item_output
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.preview import thumbnail_asset
from deep_lulc.shared.publish import staged_output
from deep_lulc.shared.reruns import idempotent
from deep_lulc.shared.stac import stamp_provenance
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.change.transitions import (
    NODATA_CODE,
    STABLE_COLOUR,
    TRANSITION_FORMULA,
    TransitionCoding,
    blocks,
    scheme_difference,
)

STAGE = "change"
CHANGE_ASSET = "change"
TOP_TRANSITIONS = 5
ID_LIMIT = 120
log = logging.getLogger(__name__)


@idempotent(STAGE)
def run(*, inputs: Mapping[str, str], output: str, params: ChangeParams) -> StageResult:
    """Transitions from the map at `inputs['before']` to the map at `inputs['after']`, written to `output`."""
    for key in ("before", "after"):
        if key not in inputs:
            raise BadInputError(
                f"missing input '{key}'", fix=f"pass --{key} HREF (a catalog written by deep-lulc predict)"
            )
    before = open_class_map(inputs["before"], made_by="predict")
    after = open_class_map(inputs["after"], made_by="predict")
    scheme = common_scheme(before.scheme, after.scheme, params.classes)
    start, end = _period(before.item, after.item)
    grid = before.grid
    area_m2 = pixel_area_m2(grid)
    resampled = not same_grid(grid, after.grid)
    if resampled:
        log.warning(
            "the --after map's grid (EPSG:%d, %dx%d px) differs from the --before map's (EPSG:%d, %dx%d px): "
            "resampling --after onto the --before grid by nearest neighbour",
            after.grid.epsg, after.grid.width, after.grid.height, grid.epsg, grid.width, grid.height,
        )  # fmt: skip
        _require_overlap(grid, after.grid)
    coding = TransitionCoding(scheme)
    identifier = change_id(before.item.id, after.item.id)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        counts = _write_transitions(folder / "change.tif", before, after, coding, params.block_size, resampled)
        pixels = counts[1:].reshape(coding.n, coding.n)
        if not pixels.any():
            raise BadInputError(
                "no pixel has a class in both maps (they do not overlap, or one is all nodata)",
                fix="pass two maps of the same area",
            )
        summary = area_summary(pixels, coding, area_m2)
        _write_matrix_csv(folder / "matrix.csv", summary)
        (folder / "matrix.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        _thumbnail(
            folder / "change.tif", coding, folder / "thumbnail.png", title=f"{before.item.id} -> {after.item.id}"
        )
        item = pystac.Item(
            id=identifier,
            geometry=before.item.geometry,
            bbox=before.item.bbox,
            datetime=None,
            properties={
                "start_datetime": _iso(start),
                "end_datetime": _iso(end),
                **grid.properties(),
                "deep-lulc:transition_code": TRANSITION_FORMULA,
                "deep-lulc:classes": scheme.to_dict(),
                "deep-lulc:resampled": resampled,
                "deep-lulc:changed_fraction": summary["changed_fraction"],
            },
            stac_extensions=[PROJECTION_EXTENSION, CLASSIFICATION_EXTENSION, RASTER_EXTENSION],
        )
        item.add_asset(CHANGE_ASSET, change_asset(str(folder / "change.tif"), coding, counts, grid))
        item.add_asset(
            "matrix_csv",
            pystac.Asset(str(folder / "matrix.csv"), title="Transition matrix in hectares (rows: from, columns: to)",
                         media_type="text/csv", roles=["data"]),
        )  # fmt: skip
        item.add_asset(
            "matrix_json",
            pystac.Asset(str(folder / "matrix.json"), title="Transition matrix, net change and changed area",
                         media_type=pystac.MediaType.JSON, roles=["data", "metadata"]),
        )  # fmt: skip
        item.add_asset(
            "thumbnail", thumbnail_asset(folder / "thumbnail.png", title="Changes in their new class colour")
        )
        stamp_provenance(item, derived_from=[_item_href(before, inputs["before"]), _item_href(after, inputs["after"])])
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
        "%.2f ha of %.2f ha changed (%.2f%%)%s",
        summary["changed_ha"], summary["changed_ha"] + summary["stable_ha"], 100 * summary["changed_fraction"],
        " after resampling" if resampled else "",
    )  # fmt: skip
    return StageResult(
        stage=STAGE,
        catalog=catalog_href,
        items=(identifier,),
        extra={
            "changed_fraction": summary["changed_fraction"],
            "changed_ha": summary["changed_ha"],
            "net_change_ha": summary["net_change_ha"],
            "top_transitions": top_transitions(pixels, coding, area_m2),
            "resampled": resampled,
        },
    )


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


def same_grid(first: Grid, second: Grid) -> bool:
    return (
        first.epsg == second.epsg
        and (first.height, first.width) == (second.height, second.width)
        and first.transform.almost_equals(second.transform, precision=1e-6)
    )


def pixel_area_m2(grid: Grid) -> float:
    """Pixel area in square metres; areas in degrees² would be meaningless, so a geographic grid is refused."""
    crs = pyproj.CRS.from_epsg(grid.epsg)
    if crs.is_geographic:
        raise BadInputError(
            f"the --before map is on a geographic grid (EPSG:{grid.epsg}), where pixels have no fixed area",
            fix="predict onto a projected grid (e.g. UTM)",
        )
    metres = float(crs.axis_info[0].unit_conversion_factor)
    return grid.pixel_area_m2 * metres * metres


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


def _require_overlap(grid: Grid, other: Grid) -> None:
    west, south, east, north = array_bounds(other.height, other.width, other.transform)
    left, bottom, right, top = transform_bounds(CRS.from_epsg(other.epsg), CRS.from_epsg(grid.epsg),
                                                west, south, east, north)  # fmt: skip
    x0, y0, x1, y1 = array_bounds(grid.height, grid.width, grid.transform)
    if left >= x1 or right <= x0 or bottom >= y1 or top <= y0:
        raise BadInputError("the --before and --after maps do not overlap", fix="pass two maps of the same area")


def _check_shape(dataset: Any, grid: Grid, option: str) -> None:
    if (dataset.height, dataset.width) != (grid.height, grid.width):
        raise BadInputError(
            f"the {option} raster is {dataset.width}x{dataset.height} px but its item says {grid.width}x{grid.height}",
            fix="pass an item written by `deep-lulc predict`",
        )


def _write_transitions(
    path: Path, before: ClassMap, after: ClassMap, coding: TransitionCoding, size: int, resampled: bool
) -> np.ndarray:
    """Stream both maps into the transition COG; returns the pixel count of every code."""
    grid = before.grid
    counts = np.zeros(coding.codes, dtype=np.int64)
    writer = ClassMapWriter(path, grid, nodata=NODATA_CODE, dtype=coding.dtype, colormap=coding.colormap())
    try:
        with before.open() as first, after.open() as second:
            _check_shape(first, grid, "--before")
            _check_shape(second, after.grid, "--after")
            for window in blocks(grid.height, grid.width, size):
                old = first.read(1, window=window)
                if resampled:
                    target = grid.sub_grid(int(window.row_off), int(window.col_off), int(window.height),
                                           int(window.width))  # fmt: skip
                    new = _resample(second, target, nodata=coding.scheme.nodata)
                else:
                    new = second.read(1, window=window)
                codes = coding.encode(old, new)
                counts += np.bincount(codes.ravel(), minlength=coding.codes)
                writer.write(codes, row=int(window.row_off), col=int(window.col_off))
    except BaseException:
        writer.abandon()
        raise
    writer.finish()
    return counts


def _resample(dataset: Any, target: Grid, *, nodata: int) -> np.ndarray:
    """The part of `dataset` under `target`, nearest neighbour; GDAL reads only the source window it needs."""
    destination = np.full((target.height, target.width), nodata, dtype=dataset.dtypes[0])
    reproject(
        source=rasterio.band(dataset, 1),
        destination=destination,
        src_transform=dataset.transform,
        src_crs=dataset.crs,
        src_nodata=nodata if dataset.nodata is None else dataset.nodata,
        dst_transform=target.transform,
        dst_crs=CRS.from_epsg(target.epsg),
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    return destination


def area_summary(pixels: np.ndarray, coding: TransitionCoding, area_m2: float) -> dict[str, Any]:
    """The matrix_json document: the matrix in hectares and pixels, net change per class, changed share."""
    hectares = pixels.astype(np.float64) * area_m2 / 10_000
    names = [c.name for c in coding.classes]
    stable = float(np.trace(hectares))
    changed = float(hectares.sum() - stable)
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
        rows.append({"from": coding.classes[i].name, "to": coding.classes[j].name,
                     "ha": round(float(off_diagonal[i, j]) * area_m2 / 10_000, 6)})  # fmt: skip
    return rows


def _write_matrix_csv(path: Path, summary: dict[str, Any]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["from \\ to (ha)", *summary["classes"]])
        for name, row in zip(summary["classes"], summary["hectares"], strict=True):
            writer.writerow([name, *row])


def change_asset(path: str, coding: TransitionCoding, counts: np.ndarray, grid: Grid) -> pystac.Asset:
    """Like a prediction's `classes` asset, but listing the transitions the map holds."""
    band: dict[str, Any] = {"nodata": NODATA_CODE, "data_type": coding.dtype}
    if abs(grid.transform.a) == abs(grid.transform.e) and grid.transform.b == grid.transform.d == 0:
        band["spatial_resolution"] = abs(grid.transform.a)
    return pystac.Asset(
        path,
        title=f"Class transitions, code {TRANSITION_FORMULA} (n = {coding.n})",
        media_type=COG_MEDIA_TYPE,
        roles=["data"],
        extra_fields={"classification:classes": coding.classification(counts), "raster:bands": [band]},
    )


def _thumbnail(cog: Path, coding: TransitionCoding, path: Path, *, title: str) -> None:
    """Stable pixels grey, changed pixels in the colour of the class they became, with a legend."""
    with rasterio.open(cog) as dataset:
        codes = decimated(dataset)
    origin, target = coding.decode(codes)
    stable_value = 255  # above every class value (<= 254), so it cannot collide with a to-class
    values = np.full(codes.shape, coding.scheme.nodata, dtype=np.int64)
    to_values = np.array([c.value for c in coding.classes], dtype=np.int64)
    changed = (origin >= 0) & (origin != target)
    values[changed] = to_values[target[changed]]
    values[(origin >= 0) & (origin == target)] = stable_value
    grey = "#" + "".join(f"{channel:02x}" for channel in STABLE_COLOUR)
    legend = [LulcClass(stable_value, "unchanged", "unchanged", grey)]
    legend += [LulcClass(c.value, f"changed to {c.name}", c.description, c.color) for c in coding.classes]
    legend_png(values, legend, path, title=title, nodata=coding.scheme.nodata)


def _item_href(class_map: ClassMap, fallback: str) -> str:
    return class_map.item.get_self_href() or storage.normalize_href(fallback)

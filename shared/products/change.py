"""Change maps: the item `change` publishes (a transition COG, a change-confidence COG, the area matrix as CSV
and JSON, a thumbnail) and how `evaluate` reads one back.

The transition COG is a class map whose codes are `1 + from_index * n + to_index` over the scheme the item
carries in `deep-lulc:classes`; its asset lists only the transitions present, with their pixel counts. The
confidence COG beside it holds, per pixel, the probability that the pixel changed as uint8 percent (255
where either map has no data), whatever the decision that drew the transition map: a reader can threshold
it their own way, or weigh areas by it.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from pystac.extensions.raster import DataType, RasterBand

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, write_projection
from deep_lulc.shared.io.cog import Categories, CogWriter
from deep_lulc.shared.io.preview import thumbnail_asset
from deep_lulc.shared.io.stac import ID_LIMIT, period_item, stac_id, stamp_provenance
from deep_lulc.shared.lulc.classes import ClassScheme, LulcClass, class_scheme_from_dict
from deep_lulc.shared.lulc.transitions import (
    CHANGE_ASSET,
    NODATA_CODE,
    STABLE_COLOUR,
    TRANSITION_FORMULA,
    TransitionCoding,
)
from deep_lulc.shared.products.class_map import (
    PROBABILITY_NODATA,
    PROBABILITY_SCALE,
    THUMBNAIL_ASSET,
    ClassMap,
    CogAsset,
    add_cog_asset,
    class_band,
    class_map_of,
    cog_asset_of,
    decimated,
    legend_png,
)

CHANGE_FILE = "change.tif"
CONFIDENCE_ASSET, CONFIDENCE_FILE = "confidence", "confidence.tif"
CONFIDENCE_NODATA = PROBABILITY_NODATA  # 255: either map has no data
MATRIX_CSV_FILE, MATRIX_JSON_FILE, THUMBNAIL_FILE = "matrix.csv", "matrix.json", "thumbnail.png"
MATRIX_CSV_ASSET, MATRIX_JSON_ASSET = "matrix_csv", "matrix_json"
_CLASSES_PROPERTY = "deep-lulc:classes"
_CODE_PROPERTY = "deep-lulc:transition_code"
_RESAMPLED_PROPERTY = "deep-lulc:resampled"
_CHANGED_FRACTION_PROPERTY = "deep-lulc:changed_fraction"
_METHOD_PROPERTY = "deep-lulc:change_method"


@dataclass(frozen=True)
class ChangeOutcome:
    """How a change map came about, as its item states it: a reader weighing its areas needs to know whether
    the after-map was resampled (edge effects) and which decision counted a pixel as changed."""

    resampled: bool
    changed_fraction: float
    method: Mapping[str, Any]  # the decision rule's record: `{"method": "raw"}` or the joint rule's thresholds

    def properties(self) -> dict[str, Any]:
        return {
            _RESAMPLED_PROPERTY: self.resampled,
            _CHANGED_FRACTION_PROPERTY: self.changed_fraction,
            _METHOD_PROPERTY: dict(self.method),
        }


def transition_categories(coding: TransitionCoding) -> Categories:
    """GDAL category names of every transition code (`Forest_to_Grassland`), so GIS legends read them."""
    return {NODATA_CODE: "NoData", **{code: coding.name(code) for code in range(1, coding.codes)}}


def change_writer(folder: Path, grid: GeoBox, coding: TransitionCoding) -> CogWriter:
    """The transition COG, filled window by window (codes never written stay nodata), its codes named."""
    return CogWriter(
        folder / CHANGE_FILE,
        grid,
        nodata=NODATA_CODE,
        dtype=coding.dtype,
        colormap=coding.colormap(),
        categories=transition_categories(coding),
    )


def confidence_writer(folder: Path, grid: GeoBox) -> CogWriter:
    """The confidence COG, filled window by window (pixels never written stay nodata)."""
    return CogWriter(
        folder / CONFIDENCE_FILE,
        grid,
        nodata=CONFIDENCE_NODATA,
        band_descriptions=["changed"],
        scale=PROBABILITY_SCALE,
    )


def confidence_percent(probability: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The uint8 percent a confidence COG holds: `probability` (that the pixel changed) where `valid`, else
    nodata."""
    percent = np.round(np.clip(probability, 0.0, 1.0) * 100).astype(np.uint8)
    return np.where(valid, percent, np.uint8(CONFIDENCE_NODATA))


def confidence_probability(percent: np.ndarray) -> np.ndarray:
    """The probability that each pixel changed, read back from a confidence COG's values: NaN for nodata."""
    values = np.asarray(percent)
    return np.where(values == CONFIDENCE_NODATA, np.nan, values.astype(np.float64) * PROBABILITY_SCALE)


def confidence_of(item: pystac.Item) -> CogAsset:
    """A change item's confidence COG; change items written before it existed are bad input."""
    if CONFIDENCE_ASSET not in item.assets:
        raise BadInputError(
            f"change item {item.id} has no '{CONFIDENCE_ASSET}' asset",
            fix="re-run `deep-lulc change` with this version",
        )
    return cog_asset_of(item, CONFIDENCE_ASSET)


def write_matrix_files(folder: Path, summary: Mapping[str, Any]) -> None:
    """The area matrix: hectares as CSV (rows: from, columns: to), the whole summary as JSON."""
    with (folder / MATRIX_CSV_FILE).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["from \\ to (ha)", *summary["classes"]])
        for name, row in zip(summary["classes"], summary["hectares"], strict=True):
            writer.writerow([name, *row])
    (folder / MATRIX_JSON_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def write_thumbnail(folder: Path, coding: TransitionCoding, *, title: str) -> None:
    """Stable pixels grey, changed pixels in the colour of the class they became, with a legend."""
    with rasterio.open(folder / CHANGE_FILE) as dataset:
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
    legend_png(values, legend, folder / THUMBNAIL_FILE, title=title, nodata=coding.scheme.nodata)


def change_id(before: str, after: str) -> str:
    """`change-<before>-to-<after>`, by the two maps' ids. Over `ID_LIMIT` (maps named by model and period),
    `after` loses what it shares with `before` (`...-to-<after's period>`) and the id gains a digest of the full
    one, so it stays unique."""
    identifier = f"change-{before}-to-{after}"
    if len(identifier) <= ID_LIMIT:
        return identifier
    common = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), len(after))
    shared = after.rfind("-", 0, common) + 1  # back to a whole part of the id
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:8]
    return stac_id("change", before, "to", after[shared:], digest)


def change_collection_id(map_ids: Sequence[str]) -> str:
    """The collection of a pair's item is named as the item; a series' by its first and last maps and a digest
    of them all, so neither collides with the pair of those two maps or another series between them."""
    first_to_last = change_id(map_ids[0], map_ids[-1])
    if len(map_ids) == 2:
        return first_to_last
    digest = hashlib.sha256("\n".join(map_ids).encode()).hexdigest()[:8]
    return stac_id(first_to_last, "series", digest)


def change_item(
    identifier: str,
    *,
    folder: Path,
    footprint: pystac.Item,
    grid: GeoBox,
    period: tuple[str, str],
    coding: TransitionCoding,
    counts: np.ndarray,
    outcome: ChangeOutcome,
    derived_from: Iterable[str],
) -> pystac.Item:
    """The change item over the files in `folder` (transition and confidence COGs, matrices, thumbnail);
    `footprint` is the map whose geometry it shares, `counts` the pixels of every code."""
    item = period_item(
        identifier,
        footprint.geometry or {},
        footprint.bbox or [],
        period,
        {
            _CODE_PROPERTY: TRANSITION_FORMULA,
            _CLASSES_PROPERTY: coding.scheme.to_dict(),
            **outcome.properties(),
        },
    )
    write_projection(item, grid)
    a = grid.affine
    square = abs(a.a) == abs(a.e) and a.b == a.d == 0
    add_cog_asset(
        item,
        CHANGE_ASSET,
        folder / CHANGE_FILE,
        title=f"Class transitions, code {TRANSITION_FORMULA} (n = {coding.n})",
        bands=[class_band(nodata=NODATA_CODE, dtype=coding.dtype, spatial_resolution=abs(a.a) if square else None)],
        classes=coding.classification(counts),
    )
    confidence_band = RasterBand.create(
        nodata=CONFIDENCE_NODATA, data_type=DataType.UINT8, scale=PROBABILITY_SCALE, offset=0
    )
    confidence_band.properties["name"] = "changed"
    add_cog_asset(
        item,
        CONFIDENCE_ASSET,
        folder / CONFIDENCE_FILE,
        title="Probability that the pixel changed (percent; 255: no data in either map)",
        bands=[confidence_band],
    )
    item.add_asset(
        MATRIX_CSV_ASSET,
        pystac.Asset(
            str(folder / MATRIX_CSV_FILE),
            title="Transition matrix in hectares (rows: from, columns: to)",
            media_type="text/csv",
            roles=["data"],
        ),
    )
    item.add_asset(
        MATRIX_JSON_ASSET,
        pystac.Asset(
            str(folder / MATRIX_JSON_FILE),
            title="Transition matrix, net change and changed area",
            media_type=pystac.MediaType.JSON,
            roles=["data", "metadata"],
        ),
    )
    item.add_asset(THUMBNAIL_ASSET, thumbnail_asset(folder / THUMBNAIL_FILE, title="Changes in their new class colour"))
    stamp_provenance(item, derived_from=derived_from)
    return item


def change_map_of(item: pystac.Item) -> tuple[ClassMap, TransitionCoding]:
    """A change item's transition COG as a class map over its classes, and the coding of its codes."""
    if item.properties.get(_CODE_PROPERTY) != TRANSITION_FORMULA:
        raise BadInputError(
            f"change item {item.id} does not declare {_CODE_PROPERTY} {TRANSITION_FORMULA!r}",
            fix="pass a change map written by `deep-lulc change`",
        )
    scheme: ClassScheme = class_scheme_from_dict(item.properties.get(_CLASSES_PROPERTY), source=f"item {item.id}")
    return class_map_of(item, key=CHANGE_ASSET, scheme=scheme), TransitionCoding(scheme)

"""Samples for reference labelling: the points `sample` draws (GeoPackage + GeoJSON + item) and how `area`
reads them back once an analyst has filled in the `reference` column.

Each point carries what the estimators need beside the analyst's label, so the file alone is the design:
its stratum and that stratum's pixel count in the map, its inclusion probability, and the map's value at the
point when it was drawn. `area` compares the last two with the map it is given, which is how a sample drawn
from another map is caught.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import shapely
from rasterio.warp import transform as transform_points

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import epsg_of
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.stac import stamp_provenance
from deep_lulc.shared.products.strata import StrataMap

GEOPACKAGE_FILE, GEOJSON_FILE = "sample.gpkg", "sample.geojson"
POINTS_ASSET, GEOJSON_ASSET = "points", "points_geojson"
GEOPACKAGE_MEDIA_TYPE = "application/geopackage+sqlite3"
LAYER = "sample"
REFERENCE, REFERENCE_FROM, REFERENCE_TO = "reference", "reference_from", "reference_to"
MAP_CLASS, STRATUM, STRATUM_PIXELS = "map_class", "stratum", "stratum_pixels"
INCLUSION = "inclusion_probability"
_DESIGN_PROPERTY = "deep-lulc:sample_design"
# GeoPackage stamps the write time into gpkg_contents; a fixed date keeps a rerun byte-identical.
_FIXED_OGR_DATE = "2000-01-01T00:00:00.000Z"
SAMPLE_FIX = "pass the sample.gpkg (or sample.geojson) written by `deep-lulc sample`, with its reference column filled"


@dataclass(frozen=True)
class Allocation:
    """How the sample was designed, as its item states it: a reader must know the strata were the map's."""

    size: int  # what was asked for
    min_per_stratum: int
    seed: int
    strata_pixels: Mapping[int, int]  # N_h by stratum code
    counts: Mapping[int, int]  # n_h by stratum code

    def record(self, strata: StrataMap) -> dict[str, Any]:
        names = strata.by_code()
        return {
            "design": "stratified random sample of pixels",
            "strata": "transitions of the change map" if strata.kind == "transitions" else "classes of the map",
            "allocation": f"at least {self.min_per_stratum} per stratum (all pixels of a smaller one), the rest "
            "proportional to stratum area",
            "size": self.size,
            "drawn": int(sum(self.counts.values())),
            "min_per_stratum": self.min_per_stratum,
            "seed": self.seed,
            "map": strata.identifier,
            "per_stratum": [
                {
                    "stratum": names[code].name,
                    "code": int(code),
                    "pixels": int(self.strata_pixels[code]),
                    "sample": int(self.counts[code]),
                }
                for code in sorted(self.counts)
            ],
        }


@dataclass(frozen=True)
class DrawnPoints:
    """The drawn pixels: their positions on the map's grid and the stratum (map code) of each."""

    rows: np.ndarray
    cols: np.ndarray
    codes: np.ndarray


def centres(strata: StrataMap, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of pixel centres."""
    affine = strata.grid.affine
    xs = affine.c + (cols + 0.5) * affine.a + (rows + 0.5) * affine.b
    ys = affine.f + (cols + 0.5) * affine.d + (rows + 0.5) * affine.e
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def write_sample(folder: Path, strata: StrataMap, drawn: DrawnPoints, allocation: Allocation) -> None:
    """The points as a GeoPackage in the map's CRS (for QGIS labelling) and as GeoJSON in WGS84."""
    names = strata.by_code()
    n = len(drawn.codes)
    pixels = np.array([allocation.strata_pixels[int(c)] for c in drawn.codes], dtype=np.int64)
    taken = np.array([allocation.counts[int(c)] for c in drawn.codes], dtype=np.float64)
    empty = np.zeros(n, dtype=np.int32)
    columns: list[tuple[str, np.ndarray, np.ndarray | None]] = [
        ("sample_id", np.arange(1, n + 1, dtype=np.int32), None),
        (REFERENCE, empty, np.ones(n, dtype=bool)),
    ]
    if strata.kind == "transitions":
        columns += [(REFERENCE_FROM, empty, np.ones(n, dtype=bool)), (REFERENCE_TO, empty, np.ones(n, dtype=bool))]
    columns += [
        (MAP_CLASS, drawn.codes.astype(np.int32), None),
        ("map_name", np.array([names[int(c)].name for c in drawn.codes], dtype=object), None),
        (STRATUM, np.array([names[int(c)].name for c in drawn.codes], dtype=object), None),
        (STRATUM_PIXELS, pixels, None),
        (INCLUSION, taken / pixels, None),
    ]
    xs, ys = centres(strata, drawn.rows, drawn.cols)
    epsg = epsg_of(strata.grid)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_OGR_DATE})
    longitudes, latitudes = transform_points(f"EPSG:{epsg}", "EPSG:4326", list(xs), list(ys))
    for path, driver, crs, x, y in (
        (folder / GEOPACKAGE_FILE, "GPKG", f"EPSG:{epsg}", xs, ys),
        (folder / GEOJSON_FILE, "GeoJSON", "EPSG:4326", np.asarray(longitudes), np.asarray(latitudes)),
    ):
        pyogrio.raw.write(
            str(path),
            geometry=shapely.to_wkb(shapely.points(x, y)),
            field_data=[values for _, values, _ in columns],
            fields=[name for name, _, _ in columns],
            field_mask=[mask for _, _, mask in columns],
            geometry_type="Point",
            crs=crs,
            driver=driver,
            layer=LAYER,
        )


def sample_item(
    identifier: str, *, folder: Path, strata: StrataMap, allocation: Allocation, derived_from: list[str]
) -> pystac.Item:
    """The sample's item: the map's footprint and period, the design, the two files."""
    item = strata.product_item(identifier, {_DESIGN_PROPERTY: allocation.record(strata)})
    item.add_asset(
        POINTS_ASSET,
        pystac.Asset(
            str(folder / GEOPACKAGE_FILE),
            title="Sample points to label: fill the 'reference' column (the class you see), then run deep-lulc area",
            media_type=GEOPACKAGE_MEDIA_TYPE,
            roles=["data"],
        ),
    )
    item.add_asset(
        GEOJSON_ASSET,
        pystac.Asset(
            str(folder / GEOJSON_FILE),
            title="The same points in WGS84 (GeoJSON)",
            media_type=pystac.MediaType.GEOJSON,
            roles=["data"],
        ),
    )
    stamp_provenance(item, derived_from=derived_from)
    return item


@dataclass(frozen=True)
class LabelledSample:
    """A sample read back: each point's map coordinates (in the map's CRS) and what the file says of it."""

    href: str
    xs: np.ndarray
    ys: np.ndarray
    ids: np.ndarray  # sample_id, or the row number
    reference: np.ndarray  # float: NaN where the analyst left it empty
    reference_from: np.ndarray | None
    reference_to: np.ndarray | None
    map_class: np.ndarray | None  # what the map held when the sample was drawn
    stratum_pixels: np.ndarray | None


def read_sample(href: str, *, epsg: int) -> LabelledSample:
    """The labelled sample at `href` (GeoPackage, GeoJSON or any point file GDAL reads), its points in
    EPSG:`epsg`."""
    source = storage.local_or_buffer(href, what="sample", fix=SAMPLE_FIX)
    try:
        meta, fids, geometry, fields = pyogrio.raw.read(source, return_fids=True)
    except Exception as exc:  # pyogrio's own error classes
        raise BadInputError(f"cannot read the sample {storage.redact(href)}: {exc}", fix=SAMPLE_FIX) from exc
    names = [str(name) for name in meta["fields"]]
    columns = dict(zip(names, fields, strict=True))
    if len(geometry) == 0:
        raise BadInputError(f"the sample {storage.redact(href)} holds no points", fix=SAMPLE_FIX)
    has_pair = REFERENCE_FROM in columns and REFERENCE_TO in columns
    if REFERENCE not in columns and not has_pair:
        raise BadInputError(
            f"the sample {storage.redact(href)} has no '{REFERENCE}' column (columns: {', '.join(names)})",
            fix=SAMPLE_FIX,
        )
    if not meta.get("crs"):
        raise BadInputError(f"the sample {storage.redact(href)} declares no CRS", fix=SAMPLE_FIX)
    shapes = shapely.from_wkb(geometry)
    if not all(shape is not None and shape.geom_type == "Point" for shape in shapes):
        raise BadInputError(f"the sample {storage.redact(href)} holds geometries that are not points", fix=SAMPLE_FIX)
    xs, ys = shapely.get_x(shapes), shapely.get_y(shapes)
    if str(meta["crs"]).upper() != f"EPSG:{epsg}":
        moved = transform_points(str(meta["crs"]), f"EPSG:{epsg}", list(xs), list(ys))
        xs, ys = np.asarray(moved[0]), np.asarray(moved[1])
    ids = columns.get("sample_id", fids if fids is not None else np.arange(1, len(shapes) + 1))
    return LabelledSample(
        href=storage.normalize_href(href),
        xs=np.asarray(xs, dtype=np.float64),
        ys=np.asarray(ys, dtype=np.float64),
        ids=np.asarray(ids),
        reference=_numbers(columns.get(REFERENCE), len(shapes), column=REFERENCE, href=href),
        reference_from=_numbers(columns[REFERENCE_FROM], len(shapes), column=REFERENCE_FROM, href=href)
        if has_pair
        else None,
        reference_to=_numbers(columns[REFERENCE_TO], len(shapes), column=REFERENCE_TO, href=href) if has_pair else None,
        map_class=_numbers(columns[MAP_CLASS], len(shapes), column=MAP_CLASS, href=href)
        if MAP_CLASS in columns
        else None,
        stratum_pixels=_numbers(columns[STRATUM_PIXELS], len(shapes), column=STRATUM_PIXELS, href=href)
        if STRATUM_PIXELS in columns
        else None,
    )


def _numbers(values: Any, count: int, *, column: str, href: str) -> np.ndarray:
    """A column as floats, NaN where empty; text a spreadsheet left ('3', '') is read as numbers too."""
    if values is None:
        return np.full(count, np.nan)
    out = np.full(count, np.nan)
    for index, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BadInputError(
                f"the sample {storage.redact(href)} has {value!r} in column '{column}' (row {index + 1})",
                fix="write class values as whole numbers, or leave the cell empty",
            ) from None
        if not math.isnan(number) and number != int(number):
            raise BadInputError(
                f"the sample {storage.redact(href)} has {value!r} in column '{column}' (row {index + 1})",
                fix="write class values as whole numbers",
            )
        out[index] = number
    return out


def with_references(source: str, target: Path, references: Mapping[str, np.ndarray]) -> Path:
    """A copy of the sample at `source` with reference columns filled in (`references`: column -> values, a
    negative value left empty), as an analyst's labelling would leave it; used where the truth is known."""
    raw = storage.local_or_buffer(source, what="sample", fix=SAMPLE_FIX)
    meta, _, geometry, fields = pyogrio.raw.read(raw, return_fids=True)
    names = [str(name) for name in meta["fields"]]
    columns = dict(zip(names, fields, strict=True))
    masks: dict[str, np.ndarray | None] = dict.fromkeys(names)
    for name, values in references.items():
        if name not in columns:
            raise BadInputError(f"the sample {storage.redact(source)} has no column {name!r}", fix=SAMPLE_FIX)
        filled = np.asarray(values, dtype=np.int64)
        columns[name] = np.where(filled < 0, 0, filled).astype(np.int32)
        masks[name] = filled < 0
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_OGR_DATE})
    pyogrio.raw.write(
        str(target),
        geometry=geometry,
        field_data=list(columns.values()),
        fields=names,
        field_mask=[masks[name] for name in names],
        geometry_type="Point",
        crs=meta["crs"],
        driver="GPKG",
        layer=LAYER,
    )
    return target

"""Reference labels: vector polygons in any CRS and format, mapped onto the class scheme, rasterised.

Used wherever labels meet a pixel grid (training chips, map evaluation). Problems are reported the way a
user can fix them: unknown codes listed with the `--class-map` remedy, broken geometries by feature id,
labels that miss the grid with both extents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import shapely
import yaml
from affine import Affine
from pyproj import CRS, Transformer
from rasterio import features as rasterio_features
from shapely.geometry import box

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.geometry import format_bbox
from deep_lulc.shared.io import storage
from deep_lulc.shared.lulc.classes import ClassScheme


@dataclass(frozen=True)
class LabelPolygons:
    geometries: np.ndarray  # shapely geometries in the target CRS
    values: np.ndarray  # class values of the scheme (uint8)
    source: str
    repaired: tuple[str, ...]  # feature ids whose geometry was repaired
    dropped: tuple[str, ...]  # feature ids dropped: empty or unrepairable geometry


def load_class_map(path: str | None) -> dict[str, str]:
    """Source code or name -> scheme value or name, from YAML/JSON (`{"11": 1, "Forest": "Forest"}`) or
    a two-column CSV."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"class map not found: {file}", fix="pass a YAML, JSON or CSV file to --class-map")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".csv":
        pairs = [line.split(",", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
        mapping: Any = {k.strip(): v.strip() for k, v in pairs if k.strip().lower() not in ("source", "from")}
    else:
        try:
            mapping = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BadInputError(f"class map {file} is not valid YAML/JSON: {exc}", fix="fix its syntax") from exc
    if not isinstance(mapping, dict):
        raise BadInputError(f"class map {file} is not a mapping", fix="write source: target pairs")
    return {str(k): str(v) for k, v in mapping.items()}


def _to_scheme_value(raw: Any, scheme: ClassScheme, class_map: Mapping[str, str]) -> int | None:
    key = str(raw).strip()
    if key.endswith(".0") and key[:-2].lstrip("-").isdigit():
        key = key[:-2]
    target = class_map.get(key, key) if class_map else key
    if target.lstrip("-").isdigit():
        value = int(target)
        return value if value in scheme.values else None
    for cls in scheme.classes:
        if cls.name.lower() == target.lower():
            return cls.value
    return None


def read_labels(
    href: str,
    *,
    class_column: str,
    scheme: ClassScheme,
    class_map: Mapping[str, str],
    target_epsg: int,
    scheme_fix: str = "pass a matching scheme with --classes",
) -> LabelPolygons:
    """Read, repair, map and reproject label polygons (`scheme_fix`: how the caller's command changes the
    scheme, said when codes are unknown)."""
    href = storage.normalize_href(href)
    source = storage.local_or_buffer(href, what="labels", fix="pass an existing vector file to --labels")
    try:
        meta, fids, geometry, fields = pyogrio.raw.read(source, return_fids=True)
    except Exception as exc:  # pyogrio's own error classes
        raise BadInputError(
            f"cannot read labels {storage.redact(href)}: {exc}",
            fix="use GeoPackage, Shapefile (with .prj), GeoJSON or FlatGeobuf",
        ) from exc
    names = list(meta["fields"])
    if class_column not in names:
        raise BadInputError(
            f"labels {storage.redact(href)} have no column {class_column!r} (columns: {', '.join(names) or 'none'})",
            fix="pass the column holding the class codes with --class-column",
        )
    if len(geometry) == 0:
        raise BadInputError(f"labels {storage.redact(href)} hold no features", fix="pass a file with labelled polygons")
    if not meta.get("crs"):
        raise BadInputError(
            f"labels {storage.redact(href)} declare no CRS (a Shapefile without .prj?)",
            fix="add the .prj file or save the labels with their CRS (e.g. as GeoPackage)",
        )
    raw_codes = fields[names.index(class_column)]
    ids = [str(f) for f in (fids if fids is not None else range(len(geometry)))]
    shapes = shapely.from_wkb(geometry)
    values = np.array([_to_scheme_value(code, scheme, class_map) for code in raw_codes], dtype=object)
    unknown = sorted({str(code) for code, value in zip(raw_codes, values, strict=True) if value is None})
    if unknown:
        raise BadInputError(
            f"labels {storage.redact(href)} use class codes not in the class scheme: {', '.join(unknown[:20])}"
            + (f" (+{len(unknown) - 20} more)" if len(unknown) > 20 else ""),
            fix=f"map them with --class-map FILE (source: target) or {scheme_fix}",
        )
    repaired: list[str] = []
    dropped: list[str] = []
    kept_shapes: list[Any] = []
    kept_values: list[int] = []
    for fid, geom, value in zip(ids, shapes, values, strict=True):
        if geom is None or geom.is_empty:
            dropped.append(fid)
            continue
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
            polygons = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
            if not polygons:
                dropped.append(fid)
                continue
            geom = shapely.union_all(polygons)
            repaired.append(fid)
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            dropped.append(fid)
            continue
        kept_shapes.append(geom)
        kept_values.append(int(value))
    if not kept_shapes:
        raise BadInputError(
            f"labels {storage.redact(href)} hold no usable polygons ({len(dropped)} empty or invalid)",
            fix="check the geometries (points and lines are not labels)",
        )
    crs = CRS.from_user_input(meta["crs"])
    geometries = np.array(kept_shapes, dtype=object)
    if crs.to_epsg() != target_epsg:
        transformer = Transformer.from_crs(crs, target_epsg, always_xy=True)
        geometries = shapely.transform(
            geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))
        )
    return LabelPolygons(
        geometries=geometries,
        values=np.array(kept_values, dtype=np.uint8),
        source=storage.redact(href),
        repaired=tuple(repaired),
        dropped=tuple(dropped),
    )


def rasterize_labels(
    labels: LabelPolygons, *, shape: tuple[int, int], transform: Affine, epsg: int, nodata: int = 0
) -> np.ndarray:
    """Class of the polygon under each pixel centre; `nodata` elsewhere. Errors when the labels miss the grid."""
    height, width = shape
    grid_box = box(transform.c, transform.f + transform.e * height, transform.c + transform.a * width, transform.f)
    extent = shapely.union_all(labels.geometries).bounds
    if not box(*extent).intersects(grid_box):
        to_wgs84 = Transformer.from_crs(epsg, 4326, always_xy=True)
        label_ll = to_wgs84.transform_bounds(*extent)
        grid_ll = to_wgs84.transform_bounds(*grid_box.bounds)
        raise BadInputError(
            f"labels {labels.source} (extent {format_bbox(label_ll)}) do not overlap the features "
            f"(extent {format_bbox(grid_ll)})",
            fix="use labels of the same area, or features built for the labels' AOI",
        )
    burned = rasterio_features.rasterize(
        zip(labels.geometries, labels.values.tolist(), strict=True),
        out_shape=shape,
        transform=transform,
        fill=nodata,
        dtype="uint8",
    )
    return np.asarray(burned, dtype=np.uint8)


def describe(labels: LabelPolygons) -> dict[str, Any]:
    """What was read, for the output's metadata and the log."""
    return {
        "source": labels.source,
        "polygons": len(labels.values),
        "repaired": list(labels.repaired),
        "dropped": list(labels.dropped),
    }

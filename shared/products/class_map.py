"""Class maps: the prediction item `predict` and `merge` publish (a `classes` COG, optionally a `probabilities`
COG, a legend preview), how any class-like COG asset is written, and how a class map is read back.

Every COG asset records its size (file extension) when it is written, and a read checks it: a class map whose
file was lost or cut short is bad input naming that file, never a GDAL traceback or a map of nodata. Grids are
odc-geo `GeoBox`es read and written through `deep_lulc.shared.geo.grids`.

A class COG names its codes twice: `classification:classes` for STAC readers and GDAL category names (plus a
thematic attribute table) for desktop GIS. GDAL keeps the latter in the COG's `.aux.xml` sidecar, which the
item lists as an asset of its own so that copies made from the item carry the legend along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from shapely.geometry import mapping

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, geobox_of, projection_fields, write_projection
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.cog import COG_MEDIA_TYPE, Categories, CogWriter, Colormap, open_cog, require_file, sidecar_of
from deep_lulc.shared.io.integrity import Recorded
from deep_lulc.shared.io.preview import thumbnail_asset
from deep_lulc.shared.io.stac import items_of, period_item, read_stac, stac_id, stamp_provenance, stem
from deep_lulc.shared.lulc.classes import ClassScheme, LulcClass, class_scheme_from_dict
from deep_lulc.shared.products.tiles import Tile

CLASS_MAP_ASSET = "classes"
PROBABILITIES_ASSET = "probabilities"  # uint8 percent per labelled class, written by `predict --probabilities`
THUMBNAIL_ASSET = "thumbnail"
CLASSES_FILE = "classes.tif"
PROBABILITIES_FILE = "probabilities.tif"
PREVIEW_FILE = "preview.png"
PROBABILITY_NODATA = 255
PROBABILITY_SCALE = 0.01
GRID_PROPERTY = "deep-lulc:grid"  # the features grid a (tile) prediction was cut from
_MODEL = "deep-lulc:model"
_WINDOW = "deep-lulc:window"
_PREDICTION_ID = "deep-lulc:prediction_id"
_TILE = "deep-lulc:tile"
_MERGED_TILES = "deep-lulc:merged_tiles"
_CLASS_FRACTIONS = "deep-lulc:class_fractions"
TILE_PREDICTION_FIX = "pass the catalogs written by `deep-lulc predict --tile ... --tiles ...` for one plan"
GRID_FIELDS = ("proj:code", "proj:shape", "proj:transform")
SIDECAR_ASSET_SUFFIX = "_aux"  # asset key of a COG's GDAL sidecar: `classes_aux` beside `classes`
SIDECAR_MEDIA_TYPE = "application/xml"


def colormap_of(scheme: ClassScheme) -> Colormap:
    """GDAL colour table: class colours, nodata transparent."""
    return {c.value: (*c.rgb, 0 if c.value == scheme.nodata else 255) for c in scheme.classes}


def categories_of(scheme: ClassScheme) -> Categories:
    """GDAL category names: each class value's name (nodata included, so GIS legends list it)."""
    return {c.value: c.name for c in scheme.classes}


# --- Writing ----------------------------------------------------------------------------------------------------


def class_map_writer(path: Path, grid: GeoBox, scheme: ClassScheme) -> CogWriter:
    """The `classes` COG of a map in `scheme`, filled window by window, its codes named for GDAL."""
    return CogWriter(path, grid, nodata=scheme.nodata, colormap=colormap_of(scheme), categories=categories_of(scheme))


def probabilities_writer(path: Path, grid: GeoBox, scheme: ClassScheme) -> CogWriter:
    """The `probabilities` COG: one uint8 percent band per labelled class, 255 where nothing was observed."""
    labelled = [c.name for c in scheme.labelled]
    return CogWriter(
        path, grid, nodata=PROBABILITY_NODATA, count=len(labelled), band_descriptions=labelled, scale=PROBABILITY_SCALE
    )


def add_cog_asset(
    item: pystac.Item,
    key: str,
    path: Path,
    *,
    title: str,
    bands: Sequence[RasterBand],
    classes: Sequence[Mapping[str, Any]] | None = None,
) -> pystac.Asset:
    """Add the COG at `path` (already written) as asset `key`: its bands (raster extension), what its codes
    mean (classification extension) and its size (file extension), which a read checks. A GDAL sidecar the
    writer left beside it (category names) becomes asset `<key>_aux`."""
    asset = pystac.Asset(str(path), title=title, media_type=COG_MEDIA_TYPE, roles=["data"])
    item.add_asset(key, asset)
    if classes is not None:
        ClassificationExtension.ext(asset, add_if_missing=True).classes = [Classification(dict(c)) for c in classes]
    RasterExtension.ext(asset, add_if_missing=True).bands = list(bands)
    FileExtension.ext(asset, add_if_missing=True).size = path.stat().st_size
    sidecar = sidecar_of(path)
    if sidecar.is_file():
        aux = pystac.Asset(
            str(sidecar),
            title=f"GDAL sidecar of '{key}': category names and attribute table",
            media_type=SIDECAR_MEDIA_TYPE,
            roles=["metadata"],
        )
        item.add_asset(key + SIDECAR_ASSET_SUFFIX, aux)
        FileExtension.ext(aux, add_if_missing=True).size = sidecar.stat().st_size
    return asset


def class_band(*, nodata: int, dtype: str = "uint8", spatial_resolution: float | None = None) -> RasterBand:
    """The one band of a class-code COG; the raster schema wants a number for spatial_resolution, never null."""
    return RasterBand.create(nodata=nodata, data_type=DataType(dtype), spatial_resolution=spatial_resolution)


def add_class_map_asset(
    item: pystac.Item, path: Path, *, scheme: ClassScheme, title: str, key: str = CLASS_MAP_ASSET
) -> pystac.Asset:
    """The `classes` asset: a COG whose classification:classes say what each code means."""
    return add_cog_asset(
        item, key, path, title=title, bands=[class_band(nodata=scheme.nodata)], classes=scheme.to_classification()
    )


def add_probabilities_asset(item: pystac.Item, path: Path, *, scheme: ClassScheme) -> pystac.Asset:
    bands = []
    for cls in scheme.labelled:
        band = RasterBand.create(nodata=PROBABILITY_NODATA, data_type=DataType.UINT8, scale=PROBABILITY_SCALE, offset=0)
        band.properties["name"] = cls.name  # which class a band is: what `change` checks before weighing them
        bands.append(band)
    return add_cog_asset(
        item, PROBABILITIES_ASSET, path, title="Class probabilities (percent; 255: no observation)", bands=bands
    )


def grid_record(grid: GeoBox) -> dict[str, Any]:
    """The features grid as the `deep-lulc:grid` property of a prediction (merge puts tiles back on it)."""
    fields = projection_fields(grid)
    return {key: fields[key] for key in GRID_FIELDS}


def grid_of_record(record: Mapping[str, Any], *, name: str) -> GeoBox:
    """The grid a `deep-lulc:grid` property holds, read by the one projection-field parser."""
    return geobox_of(pystac.Asset(href=name, title=name, extra_fields=dict(record)))


class PredictionWriters:
    """The class COG and, optionally, the probability COG of one prediction, filled block by block."""

    def __init__(self, folder: Path, grid: GeoBox, scheme: ClassScheme, *, probabilities: bool) -> None:
        self.scheme = scheme
        self.class_pixels = np.zeros(256, dtype=np.int64)
        self.classes = class_map_writer(folder / CLASSES_FILE, grid, scheme)
        self.probabilities = probabilities_writer(folder / PROBABILITIES_FILE, grid, scheme) if probabilities else None

    def write_classes(self, classes: np.ndarray, *, row: int, col: int) -> None:
        self.class_pixels += np.bincount(classes.ravel(), minlength=256)
        self.classes.write(classes, row=row, col=col)

    def write_probabilities(self, percent: np.ndarray, *, row: int, col: int) -> None:
        if self.probabilities is not None:
            self.probabilities.write(percent, row=row, col=col)

    def finish(self) -> None:
        self.classes.finish()
        if self.probabilities is not None:
            self.probabilities.finish(overview_resampling="average")

    def abandon(self) -> None:
        self.classes.abandon()
        if self.probabilities is not None:
            self.probabilities.abandon()

    def pixel_counts(self) -> dict[str, int]:
        return {c.name: int(self.class_pixels[c.value]) for c in self.scheme.labelled if self.class_pixels[c.value]}


def percent(probabilities: np.ndarray, labelled: list[int], observed: np.ndarray) -> np.ndarray:
    """uint8 percent per labelled class; 255 where there was no observation."""
    values = np.round(probabilities[labelled] * 100).astype(np.uint8)
    values[:, ~observed] = PROBABILITY_NODATA
    return values


def prediction_item(
    identifier: str,
    *,
    folder: Path,
    grid: GeoBox,
    scheme: ClassScheme,
    period: tuple[str, str],
    derived_from: list[str],
    class_pixels: Mapping[str, int],
    probabilities: bool,
    record: PredictionRecord | None = None,
    properties: Mapping[str, Any] | None = None,
) -> pystac.Item:
    """An item whose `classes` asset is the map (written by `PredictionWriters` into `folder`), with a legend
    preview written beside it; `record` says how the map was made, `properties` are further fields (for
    fixtures standing in for a stage's output)."""
    west, south, east, north = grid.boundingbox
    footprint = bounds_to_wgs84(epsg_of(grid), (west, south, east, north))
    with rasterio.open(folder / CLASSES_FILE) as dataset:
        overview = decimated(dataset)
    legend_png(overview, list(scheme.classes), folder / PREVIEW_FILE, title=identifier, nodata=scheme.nodata)
    total = max(sum(class_pixels.values()), 1)
    item = period_item(
        identifier,
        mapping(footprint),
        footprint.bounds,
        period,
        {
            _CLASS_FRACTIONS: {name: round(count / total, 6) for name, count in class_pixels.items()},
            **(record.properties() if record is not None else {}),
            **(properties or {}),
        },
    )
    write_projection(item, grid)
    add_class_map_asset(item, folder / CLASSES_FILE, scheme=scheme, title="LULC classes")
    if probabilities:
        add_probabilities_asset(item, folder / PROBABILITIES_FILE, scheme=scheme)
    item.add_asset(THUMBNAIL_ASSET, thumbnail_asset(folder / PREVIEW_FILE, title="Predicted classes with legend"))
    stamp_provenance(item, derived_from=derived_from)
    return item


# --- How a prediction was made -----------------------------------------------------------------------------------


class InferenceWindow(TypedDict):
    """The inference window of a prediction: tiles blend like one map only when they share it."""

    size: int
    overlap: int


@dataclass(frozen=True)
class TilePlacement:
    """Where a tile prediction's core sits on the whole map, and how many tiles its plan has (so that merge
    can tell when one is missing)."""

    id: str
    row: int
    col: int
    height: int
    width: int
    tiles: int

    @classmethod
    def of(cls, tile: Tile) -> TilePlacement:
        return cls(tile.id, tile.row, tile.col, tile.height, tile.width, tile.tiles)

    def to_property(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row": self.row,
            "col": self.col,
            "height": self.height,
            "width": self.width,
            "tiles": self.tiles,
        }

    @classmethod
    def from_property(cls, value: Mapping[str, Any]) -> TilePlacement:
        return cls(
            id=value["id"],
            row=int(value["row"]),
            col=int(value["col"]),
            height=int(value["height"]),
            width=int(value["width"]),
            tiles=int(value["tiles"]),
        )


def prediction_id(model_id: str, features_id: str, *, tile: str | None = None) -> str:
    """`prediction-<model>-<features>`, the id of the whole map a run (or its `tile`) belongs to: the model's
    identity is in it, so two models' maps of the same features, loaded into one STAC API, never share an id.
    Features built for one tile still name the whole map."""
    features = stem(features_id, "features")
    if tile is not None:
        features = features.removesuffix(f"-tile-{tile}")
    return stac_id("prediction", stem(model_id, "model"), features)


def prediction_item_id(whole: str, *, tile: str | None) -> str:
    """The item's id: the whole map's (`prediction_id`), or `<it>-tile-<id>` for one tile of it."""
    return whole if tile is None else stac_id(whole, "tile", tile)


@dataclass(frozen=True, kw_only=True)
class PredictionRecord:
    """What a prediction records of how it was made: the model and window, and the whole map it is (part
    of), by id and features grid, which is what merge checks tiles against; a merged map also lists its
    tiles. `grid_fields` are kept as recorded (see `grid_record`), so a merge passes them on unchanged."""

    model_id: str
    window: InferenceWindow
    prediction_id: str
    grid_fields: Mapping[str, Any]
    merged_tiles: tuple[str, ...] | None = None

    def properties(self) -> dict[str, Any]:
        properties = {
            _MODEL: self.model_id,
            _WINDOW: self.window,
            _PREDICTION_ID: self.prediction_id,
            GRID_PROPERTY: self.grid_fields,
        }
        if self.merged_tiles is not None:
            properties[_MERGED_TILES] = list(self.merged_tiles)
        return properties


@dataclass(frozen=True, kw_only=True)
class TileRecord(PredictionRecord):
    """The record of one tile's prediction: also where on the whole map the tile goes."""

    tile: TilePlacement

    def properties(self) -> dict[str, Any]:
        return {**super().properties(), _TILE: self.tile.to_property()}


def tile_record(class_map: ClassMap, *, href: str) -> TileRecord:
    """The record `predict --tile` wrote on the map read from `href`; bad input for any other map."""
    properties = class_map.item.properties
    if _TILE not in properties or GRID_PROPERTY not in properties:
        raise BadInputError(f"{storage.redact(href)} is not a tile prediction (no {_TILE})", fix=TILE_PREDICTION_FIX)
    return TileRecord(
        model_id=properties[_MODEL],
        window=properties[_WINDOW],
        prediction_id=properties[_PREDICTION_ID],
        grid_fields=properties[GRID_PROPERTY],
        tile=TilePlacement.from_property(properties[_TILE]),
    )


def class_fractions(item: pystac.Item) -> dict[str, float]:
    """Each labelled class's share of the mapped pixels, as `prediction_item` recorded it."""
    return dict(item.properties[_CLASS_FRACTIONS])


# --- Reading ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CogAsset:
    """A COG asset of an item as its writer described it: where, how large, which bands."""

    item_id: str
    key: str
    href: str
    size: int | None
    bands: tuple[RasterBand, ...]
    checksum: str | None = None

    @property
    def what(self) -> str:
        return f"the '{self.key}' COG of {self.item_id}"

    def band_names(self) -> list[Any]:
        return [band.properties.get("name") for band in self.bands]

    def verify(self) -> None:
        require_file(self.href, size=self.size, what=self.what, fix=self.fix, checksum=self.checksum)

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """The rasterio dataset, after checking the file is there whole."""
        return open_cog(self.href, size=self.size, what=self.what, fix=self.fix, checksum=self.checksum)

    @property
    def fix(self) -> str:
        return "restore the file or re-run the stage that wrote the item"


def cog_asset_of(item: pystac.Item, key: str) -> CogAsset:
    asset = item.assets[key]
    recorded = Recorded.of(asset)
    return CogAsset(
        item_id=item.id,
        key=key,
        href=asset.get_absolute_href() or asset.href,
        size=recorded.size,
        bands=tuple(_bands(asset)),
        checksum=recorded.checksum,
    )


def _bands(asset: pystac.Asset) -> list[RasterBand]:
    try:
        return list(RasterExtension.ext(asset).bands or [])
    except pystac.ExtensionNotImplemented:
        return []


@dataclass(frozen=True)
class ClassMap:
    """A class-map item read back: where its raster is, on which grid, with which classes."""

    item: pystac.Item
    raster: CogAsset
    grid: GeoBox
    scheme: ClassScheme

    @property
    def href(self) -> str:
        return self.raster.href

    def open(self) -> contextlib.AbstractContextManager[Any]:
        return self.raster.open()

    def probabilities(self) -> CogAsset | None:
        """The map's class-probability COG, if its item has one."""
        if PROBABILITIES_ASSET not in self.item.assets:
            return None
        return cog_asset_of(self.item, PROBABILITIES_ASSET)

    def whole_grid(self) -> GeoBox:
        """The features grid the map was predicted on: a tile's is the whole map's, where merge puts it back."""
        return grid_of_record(self.item.properties[GRID_PROPERTY], name=f"the {GRID_PROPERTY} of {self.item.id}")


def scheme_from_asset(asset: pystac.Asset) -> ClassScheme:
    """The class scheme a class-map asset declares (classification:classes, nodata of its band)."""
    try:
        classes = ClassificationExtension.ext(asset).classes
    except pystac.ExtensionNotImplemented:
        classes = None
    if not classes:
        raise BadInputError(
            f"asset {asset.href} has no classification:classes", fix="pass an item written by deep-lulc predict"
        )
    bands = _bands(asset)
    nodata = bands[0].nodata if bands else None
    document = {
        "nodata": int(nodata if nodata is not None else 0),
        "classes": [
            {
                "value": c.value,
                "name": c.name,
                "description": c.description,
                "color": "#" + str(c.color_hint or "808080").lower(),
            }
            for c in classes
        ],
    }
    return class_scheme_from_dict(document, source=asset.href)


def class_map_of(item: pystac.Item, *, key: str = CLASS_MAP_ASSET, scheme: ClassScheme | None = None) -> ClassMap:
    """The class map of `item`'s asset `key` (its scheme from the asset unless given), its file checked."""
    raster = cog_asset_of(item, key)
    class_map = ClassMap(
        item=item,
        raster=raster,
        grid=geobox_of(item),
        scheme=scheme if scheme is not None else scheme_from_asset(item.assets[key]),
    )
    raster.verify()
    return class_map


def one_map_item(href: str, items: Sequence[pystac.Item], *, what: str) -> pystac.Item | None:
    """The one map among `items` (read from `href`), None when there is none; several (a change series holds
    one per pair) are bad input, since taking the first would answer for a map the user did not mean."""
    if len(items) <= 1:
        return items[0] if items else None
    ids = ", ".join(item.id for item in items[:4]) + (", ..." if len(items) > 4 else "")
    example = items[0].get_self_href() or f"{items[0].id}/{items[0].id}.json"
    raise BadInputError(
        f"{storage.redact(href)} holds {len(items)} {what}s ({ids})",
        fix=f"pass the item of the one you mean, e.g. {storage.redact(example)}",
    )


def open_class_map(href: str, *, made_by: str, asset_key: str = CLASS_MAP_ASSET) -> ClassMap:
    """The one item under `href` (catalog or item) with a class-map asset."""
    items = [item for item in items_of(read_stac(href)) if asset_key in item.assets]
    item = one_map_item(href, items, what="map")
    if item is None:
        raise BadInputError(
            f"{storage.redact(href)} holds no item with a '{asset_key}' asset",
            fix=f"pass the catalog.json written by `deep-lulc {made_by}`",
        )
    return class_map_of(item, key=asset_key)


# --- Previews ---------------------------------------------------------------------------------------------------


def legend_png(
    values: np.ndarray, classes: list[LulcClass], path: Path, *, title: str, nodata: int, max_side: int = 768
) -> Path:
    """A map preview with a legend of the classes present, for STAC browsers and the report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    step = max(1, int(np.ceil(max(values.shape) / max_side)))
    small = values[::step, ::step]
    present = [c for c in classes if c.value != nodata and bool((small == c.value).any())]
    lookup = np.zeros(int(max(c.value for c in classes)) + 1, dtype=np.int64)
    colours: list[tuple[float, float, float, float]] = [(1.0, 1.0, 1.0, 0.0)]
    for index, cls in enumerate(present, start=1):
        lookup[cls.value] = index
        red, green, blue = cls.rgb
        colours.append((red / 255, green / 255, blue / 255, 1.0))
    indexed = lookup[np.clip(small, 0, len(lookup) - 1)]
    height, width = small.shape
    figure, axes = plt.subplots(figsize=(7.5, 7.5 * height / max(width, 1) * 0.8 + 0.6), dpi=100)
    axes.imshow(indexed, cmap=ListedColormap(colours), vmin=0, vmax=len(colours) - 1, interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    handles = [Patch(facecolor=colours[i], edgecolor="black", label=c.name) for i, c in enumerate(present, start=1)]
    if handles:
        axes.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", bbox_inches="tight")
    plt.close(figure)
    return path


def decimated(dataset: Any, *, max_side: int = 768, band: int = 1) -> np.ndarray:
    """A nearest-neighbour overview read (uses the COG's overviews when they exist)."""
    step = max(1, int(np.ceil(max(dataset.height, dataset.width) / max_side)))
    shape = (max(1, dataset.height // step), max(1, dataset.width // step))
    return np.asarray(dataset.read(band, out_shape=shape, resampling=rasterio.enums.Resampling.nearest))


class PreviewSampler:
    """Every `step`-th pixel of a map that is produced window by window, on one global lattice: a preview
    (at most `max_side` px a side) without reading the map back. Maps sampled by two samplers of the same
    shape line up pixel for pixel, so previews of labels and errors can be laid side by side."""

    def __init__(self, height: int, width: int, *, fill: int, max_side: int = 768) -> None:
        self.step = max(1, int(np.ceil(max(height, width) / max_side)))
        self.values = np.full((-(-height // self.step), -(-width // self.step)), fill, dtype=np.int64)

    def add(self, values: np.ndarray, *, row: int, col: int) -> None:
        """`values`: the (rows, cols) window whose top-left pixel is (row, col) of the map."""
        first_row, first_col = (-row) % self.step, (-col) % self.step
        sample = values[first_row :: self.step, first_col :: self.step]
        top, left = (row + first_row) // self.step, (col + first_col) // self.step
        self.values[top : top + sample.shape[0], left : left + sample.shape[1]] = sample


# --- Checks and provenance of a map read back --------------------------------------------------------------------


def require_shape(dataset: Any, grid: GeoBox, *, what: str, fix: str) -> None:
    """Bad input when a raster's size differs from the grid its item declares: windows planned on the item's
    grid would read the wrong pixels, or past the raster's edge."""
    if (dataset.height, dataset.width) != (grid.height, grid.width):
        raise BadInputError(
            f"the {what} raster is {dataset.width}x{dataset.height} px but its item says {grid.width}x{grid.height}",
            fix=fix,
        )


def source_href(class_map: ClassMap, opened_as: str) -> str:
    """Where a product derived from `class_map` says it came from: the item's own href, else the href it was
    opened by (an item read from a catalog without self links)."""
    return class_map.item.get_self_href() or storage.normalize_href(opened_as)

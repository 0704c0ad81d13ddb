"""Class-map rasters (predictions, change maps): streamed COG writing, the STAC asset, reading them back.

A prediction or change map can be larger than memory, so it is written window by window into a tiled
scratch GeoTIFF beside the output and converted to a COG (overviews by mode, embedded colour map) at the
end; GDAL's block cache, not the map's size, bounds the memory that takes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from deep_lulc.shared import storage
from deep_lulc.shared.classes import ClassScheme, LulcClass, class_scheme_from_dict
from deep_lulc.shared.cog import COG_MEDIA_TYPE, open_raster
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.stac import items_of, read_stac

CLASSIFICATION_EXTENSION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
PROJECTION_EXTENSION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
CLASS_MAP_ASSET = "classes"
BLOCK = 256


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, affine transform and shape (rows, cols)."""

    epsg: int
    transform: Affine
    height: int
    width: int

    @property
    def pixel_area_m2(self) -> float:
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d)

    def properties(self) -> dict[str, Any]:
        """The projection-extension fields of an item on this grid."""
        return {
            "proj:code": f"EPSG:{self.epsg}",
            "proj:shape": [self.height, self.width],
            "proj:transform": list(self.transform)[:6],
        }

    def sub_grid(self, row: int, col: int, height: int, width: int) -> Grid:
        return Grid(self.epsg, self.transform @ Affine.translation(col, row), height, width)

    @staticmethod
    def of_item(item: pystac.Item) -> Grid:
        properties = item.properties
        epsg = int(str(properties["proj:code"]).split(":")[1])
        height, width = (int(v) for v in properties["proj:shape"])
        return Grid(epsg, Affine(*properties["proj:transform"][:6]), height, width)


def colormap_of(scheme: ClassScheme) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: class colours, nodata transparent."""
    return {c.value: (*c.rgb, 0 if c.value == scheme.nodata else 255) for c in scheme.classes}


class ClassMapWriter:
    """Write a single-band integer map window by window, then publish it as a COG.

    Windows may arrive in any order; pixels never written stay nodata.
    """

    def __init__(
        self,
        path: Path,
        grid: Grid,
        *,
        nodata: int,
        dtype: str = "uint8",
        count: int = 1,
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
        band_descriptions: list[str] | None = None,
        scale: float | None = None,
    ) -> None:
        self.path = path
        self.scratch = path.with_name(path.stem + ".scratch.tif")
        self.grid = grid
        self.colormap = colormap
        self.dataset = rasterio.open(
            self.scratch,
            "w",
            driver="GTiff",
            width=grid.width,
            height=grid.height,
            count=count,
            dtype=dtype,
            crs=CRS.from_epsg(grid.epsg),
            transform=grid.transform,
            nodata=nodata,
            tiled=True,
            blockxsize=BLOCK,
            blockysize=BLOCK,
            compress="DEFLATE",
            sparse_ok=True,
        )
        for index, description in enumerate(band_descriptions or [], start=1):
            self.dataset.set_band_description(index, description)
        if scale is not None:
            self.dataset.scales = (scale,) * count
            self.dataset.offsets = (0.0,) * count
        if colormap is not None:
            self.dataset.write_colormap(1, colormap)

    def write(self, values: np.ndarray, *, row: int, col: int) -> None:
        """`values`: (rows, cols) or (bands, rows, cols) placed at pixel (row, col)."""
        array = values[None] if values.ndim == 2 else values
        window = Window(col, row, array.shape[2], array.shape[1])
        self.dataset.write(array, window=window)

    def finish(self, *, overview_resampling: str = "mode") -> Path:
        """Close the scratch file and convert it into the COG at `path`."""
        self.dataset.close()
        rasterio.shutil.copy(
            self.scratch,
            self.path,
            driver="COG",
            COMPRESS="DEFLATE",
            PREDICTOR="2",
            BLOCKSIZE=str(BLOCK),
            OVERVIEW_RESAMPLING=overview_resampling.upper(),
            NUM_THREADS="1",
        )
        self.scratch.unlink()
        return self.path

    def abandon(self) -> None:
        if not self.dataset.closed:
            self.dataset.close()
        self.scratch.unlink(missing_ok=True)


def class_map_asset(
    path: str, *, scheme: ClassScheme, title: str, dtype: str = "uint8", spatial_resolution: float | None = None
) -> pystac.Asset:
    """The `classes` asset: a COG whose classification:classes say what each code means."""
    band: dict[str, Any] = {"nodata": scheme.nodata, "data_type": dtype}
    if spatial_resolution is not None:  # the raster schema wants a number here, never null
        band["spatial_resolution"] = spatial_resolution
    return pystac.Asset(
        path,
        title=title,
        media_type=COG_MEDIA_TYPE,
        roles=["data"],
        extra_fields={"classification:classes": scheme.to_classification(), "raster:bands": [band]},
    )


@dataclass(frozen=True)
class ClassMap:
    """A class-map item read back: where its raster is, on which grid, with which classes."""

    item: pystac.Item
    href: str
    grid: Grid
    scheme: ClassScheme

    def open(self) -> contextlib.AbstractContextManager[Any]:
        return open_raster(self.href)


def scheme_from_asset(asset: pystac.Asset) -> ClassScheme:
    classes = asset.extra_fields.get("classification:classes")
    if not classes:
        raise BadInputError(
            f"asset {asset.href} has no classification:classes", fix="pass an item written by deep-lulc predict"
        )
    bands = asset.extra_fields.get("raster:bands") or [{}]
    document = {
        "nodata": int(bands[0].get("nodata", 0)),
        "classes": [
            {
                "value": c["value"],
                "name": c["name"],
                "description": c.get("description"),
                "color": "#" + str(c.get("color_hint", "808080")).lower(),
            }
            for c in classes
        ],
    }
    return class_scheme_from_dict(document, source=asset.href)


def open_class_map(href: str, *, made_by: str, asset_key: str = CLASS_MAP_ASSET) -> ClassMap:
    """The first item under `href` (catalog or item) with a class-map asset."""
    items = [item for item in items_of(read_stac(href)) if asset_key in item.assets]
    if not items:
        raise BadInputError(
            f"{storage.redact(href)} holds no item with a '{asset_key}' asset",
            fix=f"pass the catalog.json written by `deep-lulc {made_by}`",
        )
    item = items[0]
    asset = item.assets[asset_key]
    return ClassMap(item=item, href=asset.get_absolute_href() or asset.href, grid=Grid.of_item(item),
                    scheme=scheme_from_asset(asset))  # fmt: skip


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

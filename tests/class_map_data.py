"""Hand-made prediction catalogs for the stages that read class maps (change, evaluate, merge).

They are written the way `deep-lulc predict` writes its output, so a test states the pixels it expects
and the stage under test cannot tell them from a model's map.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac

from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of, write_projection
from deep_lulc.shared.io.preview import thumbnail_asset
from deep_lulc.shared.io.stac import save_self_contained, stamp_provenance
from deep_lulc.shared.lulc.classes import SLOVENIA, ClassScheme
from deep_lulc.shared.products.class_map import add_class_map_asset, class_map_writer, legend_png


def grid_bounds(grid: GeoBox) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of a grid in its own CRS."""
    west, south, east, north = grid.boundingbox
    return float(west), float(south), float(east), float(north)


def write_class_map_catalog(
    directory: Path,
    values: np.ndarray,
    *,
    grid: GeoBox,
    scheme: ClassScheme = SLOVENIA,
    item_id: str = "prediction-test",
    start: str = "2023-01-01T00:00:00Z",
    end: str = "2023-12-31T23:59:59Z",
) -> str:
    """A self-contained catalog holding one prediction item whose `classes` COG holds `values`; returns
    the href of its catalog.json."""
    if values.shape != (grid.height, grid.width):
        raise ValueError(f"values have shape {values.shape}, the grid {(grid.height, grid.width)}")
    directory.mkdir(parents=True, exist_ok=True)
    folder = directory / item_id
    folder.mkdir()
    writer = class_map_writer(folder / "classes.tif", grid, scheme)
    half = max(1, grid.height // 2)  # two writes, so the streamed path is what gets exercised
    writer.write(values[:half].astype(np.uint8), row=0, col=0)
    if half < grid.height:
        writer.write(values[half:].astype(np.uint8), row=half, col=0)
    writer.finish()
    legend_png(values, list(scheme.classes), folder / "thumbnail.png", title=item_id, nodata=scheme.nodata)
    footprint = bounds_to_wgs84(epsg_of(grid), grid_bounds(grid))
    item = pystac.Item(
        id=item_id,
        geometry=footprint.__geo_interface__,
        bbox=list(footprint.bounds),
        datetime=None,
        properties={"start_datetime": start, "end_datetime": end},
    )
    write_projection(item, grid)
    add_class_map_asset(item, folder / "classes.tif", scheme=scheme, title="Classes")
    item.add_asset("thumbnail", thumbnail_asset(folder / "thumbnail.png", title="Classes with legend"))
    stamp_provenance(item, derived_from=["https://example.com/model/item.json"])
    catalog = pystac.Catalog(id="prediction", description="Hand-made prediction for tests")
    catalog.add_item(item)
    return str(save_self_contained(catalog, directory))

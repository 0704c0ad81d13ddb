"""`deep-lulc features`: mask clouds per pixel, compute FEATURES, interpolate onto a regular date grid.

Work streams block by block over space (every date of a block at once), so an AOI larger than memory
goes through with a peak set by the block size, not the AOI.

Which observations count. A pixel's features must depend only on its location, the time range
and the parameters, never on the AOI's extent. The original rule kept a frame only when at least
--min-valid (0.99) of the whole AOI was valid, so a date clear over a small AOI was dropped for a larger
one holding a cloud elsewhere, and the same pixels got different features. The default now is per-pixel
validity (`--frame-filter pixel`): each pixel uses every observation where its SCL class is in
--valid-scl and every band and index is finite, and no frame is dropped for the AOI. Cloud shadow (3),
cloud medium and high probability (8, 9) and thin cirrus (10) are the classes that mark a cloud (with
no data, saturated and dark pixels, 0-2). There is no spatial cloud buffer: it would need neighbours
outside the AOI to stay AOI-independent, so cloud edges that Sen2Cor misses stay in, a known trade-off.
`--frame-filter aoi` keeps the original whole-AOI rule with --min-valid, for users who want it. Windows
are aligned to the same grid whatever the AOI, and a pixel's result depends on no other pixel, so the
block size does not matter either (tests/test_features_aoi.py checks both).

Measured on the real Sentinel-2 SCL of eo-learn's Slovenia patch (36 frames, 101 x 100 px, default
--valid-scl): the whole-AOI rule at 0.99 kept 10 frames, 10.0 observations per pixel on average (at
least 9); per-pixel validity uses 27 frames, 20.9 observations per pixel (13 to 26). On the synthetic
scene of the test, a 200 m AOI inside a 960 m one kept 9 frames against 3 under the old rule and 89.5 %
of the common pixels' values differed; per-pixel, none do.

frames.json records every frame's valid fraction over the AOI, for information; `kept` is "used
somewhere in the AOI" (fraction > 0) per pixel, or "reached --min-valid" with `--frame-filter aoi`.

One pass: the per-pixel rule needs no count over the AOI first, so each cube chunk is read once and
each window is read, computed and written in a pipeline (streaming.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pystac
import xarray as xr
from rasterio import features as rasterio_features
from shapely.geometry import shape

from deep_lulc.shared.geo.grids import epsg_of, geobox_of
from deep_lulc.shared.geo.windows import blocks
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.preview import preview_stride, thumbnail_asset, true_colour_png
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.stac import stamp_provenance
from deep_lulc.shared.products import features as features_product
from deep_lulc.shared.products.cube import Cube, open_cube
from deep_lulc.shared.products.features import ZARR_NAME, FeaturesRecord
from deep_lulc.shared.products.zarr_store import Manifest, ZarrLocation
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.features.dates import DateGrid, date_grid
from deep_lulc.stages.features.frames import aoi_frames, frames_asset, pixel_frames, write_frames
from deep_lulc.stages.features.indices import CHANNELS
from deep_lulc.stages.features.params import FeaturesInputs, FeaturesParams
from deep_lulc.stages.features.streaming import assemble_preview, feature_jobs, run_windows

STAGE = "features"
PREVIEW_NAME = "preview.png"
FRAMES_NAME = "frames.json"


def aoi_mask(item: pystac.Item, shape_yx: tuple[int, int]) -> np.ndarray:
    """Pixels of the cube grid inside the AOI polygon (the cube covers its bounding box)."""
    grid = geobox_of(item)
    geometry = Aoi(shape(item.geometry), source=item.id).projected(epsg_of(grid))
    mask = rasterio_features.geometry_mask([geometry], out_shape=shape_yx, transform=grid.affine, invert=True)
    if not mask.any():  # an AOI thinner than a pixel: use the whole grid
        mask[:] = True
    return np.asarray(mask)


def valid_observations(scl: xr.DataArray, reflectance: xr.DataArray, classes: tuple[int, ...]) -> xr.DataArray:
    """A pixel of a frame is usable when its SCL class is valid and every band has data."""
    return scl.isin(list(classes)) & reflectance.notnull().all("band")


def create_store(store: Path, source: Cube, dates: DateGrid, block: int) -> None:
    """The empty store on the cube's pixels, over the cube's period, for the windows to fill."""
    cube = source.dataset
    features_product.create_store(
        store,
        grid=source.grid,
        times=dates.times,
        channels=CHANNELS,
        y=cube.y.values,
        x=cube.x.values,
        block=block,
        attrs={"start_datetime": cube.attrs.get("start_datetime"), "end_datetime": cube.attrs.get("end_datetime")},
    )


def features_item(
    identifier: str, source: Cube, dates: DateGrid, folder: Path, manifest: Manifest, record: FeaturesRecord
) -> pystac.Item:
    """The item of the written store, its preview and frames.json, derived from the cube's item."""
    cube_item = source.item
    item = features_product.features_item(
        identifier,
        cube_item=cube_item,
        grid=source.grid,
        times=dates.times,
        channels=CHANNELS,
        store=folder / ZARR_NAME,
        manifest=manifest,
        record=record,
    )
    title = f"True colour, {dates.dates[dates.middle]} (interpolated)"
    item.add_asset("thumbnail", thumbnail_asset(folder / PREVIEW_NAME, title=title))
    item.add_asset("frames", frames_asset(folder / FRAMES_NAME))
    stamp_provenance(item, derived_from=[cube_item.get_self_href() or cube_item.id])
    return item


@idempotent(STAGE)
def run(*, inputs: FeaturesInputs, output: str, params: FeaturesParams) -> StageResult:
    """Features for the cube at `inputs.cube`, written to `output`."""
    source = open_cube(inputs.cube)
    cube_item, cube = source
    height, width = cube.sizes["y"], cube.sizes["x"]
    inside = aoi_mask(cube_item, (height, width))
    windows = blocks(height, width, params.chunk_size)
    times = cube.time.values
    chosen = aoi_frames(params, source.location, windows, times, inside) if params.frame_filter == "aoi" else None
    used = None if chosen is None else chosen.used
    dates = date_grid(*source.period, params.step_days, times if used is None else times[list(used)])
    identifier = features_product.features_id(cube_item.id)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        store = folder / ZARR_NAME
        create_store(store, source, dates, params.chunk_size)
        stride = preview_stride(height, width)
        jobs = feature_jobs(
            source.location, ZarrLocation.at(str(store)), windows, used, params.valid_scl, dates, inside, stride
        )
        summaries = run_windows(jobs, address=params.dask_address)
        frames = chosen if chosen is not None else pixel_frames([s.counts for s in summaries], times, inside, params)
        manifest = features_product.finish_store(store)
        rgb = assemble_preview(windows, [summary.preview for summary in summaries], (height, width), stride)
        true_colour_png(rgb[0], rgb[1], rgb[2], folder / PREVIEW_NAME)
        write_frames(folder / FRAMES_NAME, params, times, frames)
        never_valid = sum(summary.never_valid for summary in summaries)
        record = FeaturesRecord(params.step_days, frames.count_kept, frames.count_dropped, never_valid)
        item = features_item(identifier, source, dates, folder, manifest, record)
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id=identifier,
            description=f"Sentinel-2 features every {params.step_days} days",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )

    extra = {
        "features": storage.join_href(output, identifier, ZARR_NAME),
        "dates": len(dates.dates),
        "channels": list(CHANNELS),
        "frames_kept": frames.count_kept,
        "frames_dropped": frames.count_dropped,
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

"""`deep-lulc features`: drop cloudy frames, compute FEATURES, interpolate onto a regular date grid.

Work streams block by block over space (every date of a block at once), so an AOI larger than memory
goes through with a peak set by the block size, not the AOI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping

import numpy as np
import pystac
import xarray as xr
from rasterio import features as rasterio_features
from shapely.geometry import shape

from deep_lulc.shared import storage
from deep_lulc.shared.aoi import Aoi
from deep_lulc.shared.contract import StageResult, finish_single_item_output
from deep_lulc.shared.errors import BadInputError, NothingToDoError
from deep_lulc.shared.grids import epsg_of, geobox_of
from deep_lulc.shared.preview import thumbnail_asset, true_colour_png
from deep_lulc.shared.products import features as features_product
from deep_lulc.shared.products.cube import open_cube
from deep_lulc.shared.products.features import ZARR_NAME
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.publish import staged_output
from deep_lulc.shared.reruns import idempotent
from deep_lulc.shared.stac import iso, stamp_provenance
from deep_lulc.shared.windows import blocks
from deep_lulc.stages.features.indices import CHANNELS
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.features.streaming import CountJob, FeatureJob, compute_window, count_valid, run_all

STAGE = "features"
PREVIEW_NAME = "preview.png"
FRAMES_NAME = "frames.json"
log = logging.getLogger(__name__)


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


def target_dates(start: dt.date, end: dt.date, step_days: int) -> list[dt.date]:
    count = (end - start).days // step_days + 1
    return [start + dt.timedelta(days=step_days * k) for k in range(count)]


def _days_since(moments: np.ndarray, origin: dt.date) -> np.ndarray:
    epoch = np.datetime64(origin.isoformat(), "ns")
    return np.asarray((moments.astype("datetime64[ns]") - epoch) / np.timedelta64(1, "D"), dtype=np.float64)


@idempotent(STAGE)
def run(*, inputs: Mapping[str, str], output: str, params: FeaturesParams) -> StageResult:
    """Features for the cube at `inputs['cube']`, written to `output`."""
    if "cube" not in inputs:
        raise BadInputError("missing input 'cube'", fix="pass --cube HREF (the cube stage's catalog.json)")
    source = open_cube(inputs["cube"])
    cube_item, cube = source
    grid = source.grid
    start = dt.datetime.fromisoformat(str(cube_item.properties["start_datetime"]).replace("Z", "+00:00")).date()
    end = dt.datetime.fromisoformat(str(cube_item.properties["end_datetime"]).replace("Z", "+00:00")).date()
    height, width = cube.sizes["y"], cube.sizes["x"]
    inside = aoi_mask(cube_item, (height, width))

    cube_store = source.location
    block = params.chunk_size
    grid_windows = blocks(height, width, block)
    counts = run_all(
        count_valid,
        [CountJob(cube_store, w, inside[w.slices], params.valid_scl) for w in grid_windows],
        address=params.dask_address,
    )
    fractions = np.sum(counts, axis=0) / max(int(inside.sum()), 1)
    times = cube.time.values
    kept = fractions >= params.min_valid
    frames = [
        {"datetime": iso(t), "valid_fraction": round(float(f), 6), "kept": bool(k)}
        for t, f, k in zip(times, fractions, kept, strict=True)
    ]
    if not kept.any():
        best = int(np.argmax(fractions))
        suggestion = max(0.0, float(np.floor(fractions[best] * 100) / 100))
        raise NothingToDoError(
            f"every one of {len(times)} frames is below --min-valid {params.min_valid} "
            f"(best {fractions[best]:.4f} on {iso(times[best])[:10]})",
            fix=f"lower --min-valid (e.g. {suggestion:.2f}) or extend the time range",
        )
    log.info("%d of %d frames kept (valid fraction >= %g)", int(kept.sum()), len(times), params.min_valid)
    dates = target_dates(start, end, params.step_days)
    source_days = _days_since(times[kept], start)
    target_days = np.array([(d - start).days for d in dates], dtype=np.float64)
    time_coord = np.array([np.datetime64(d.isoformat(), "ns") for d in dates])
    identifier = f"features-{cube_item.id.removeprefix('cube-')}"

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        store = folder / ZARR_NAME
        features_product.create_store(
            store, grid=grid, times=time_coord, channels=CHANNELS, y=cube.y.values, x=cube.x.values, block=block,
            attrs={"start_datetime": cube.attrs.get("start_datetime"), "end_datetime": cube.attrs.get("end_datetime")},
        )  # fmt: skip
        jobs = [
            FeatureJob(
                cube_store, ZarrLocation.at(str(store)), w, tuple(int(i) for i in np.flatnonzero(kept)),
                params.valid_scl, source_days, target_days,
            )
            for w in grid_windows
        ]  # fmt: skip
        run_all(compute_window, jobs, address=params.dask_address)
        manifest = features_product.finish_store(store)
        stored = ZarrLocation.at(str(store)).open()
        middle = len(dates) // 2
        rgb = stored["features"].isel(time=middle).sel(channel=["B04", "B03", "B02"]).values
        true_colour_png(rgb[0], rgb[1], rgb[2], folder / PREVIEW_NAME)
        never_valid = int((stored["valid_count"].values[inside] == 0).sum())
        (folder / FRAMES_NAME).write_text(
            json.dumps({"min_valid": params.min_valid, "valid_scl": list(params.valid_scl), "frames": frames}, indent=2)
            + "\n"
        )
        item = features_product.features_item(
            identifier,
            cube_item=cube_item,
            grid=grid,
            times=time_coord,
            channels=CHANNELS,
            store=store,
            manifest=manifest,
            properties={
                "deep-lulc:step_days": params.step_days,
                "deep-lulc:frames_kept": int(kept.sum()),
                "deep-lulc:frames_dropped": int((~kept).sum()),
                "deep-lulc:pixels_never_valid": never_valid,
            },
        )
        item.add_asset(
            "thumbnail", thumbnail_asset(folder / PREVIEW_NAME, title=f"True colour, {dates[middle]} (interpolated)")
        )
        item.add_asset(
            "frames",
            pystac.Asset(
                str(folder / FRAMES_NAME),
                title="Valid fraction per frame and which were dropped",
                media_type=pystac.MediaType.JSON,
                roles=["metadata"],
            ),
        )
        stamp_provenance(item, derived_from=[cube_item.get_self_href() or cube_item.id])
        catalog_href = finish_single_item_output(
            staged, item, catalog_id="features", description=f"Sentinel-2 features every {params.step_days} days",
            stage=STAGE, inputs=inputs, params=params,
        )  # fmt: skip

    extra = {
        "features": storage.join_href(output, identifier, ZARR_NAME),
        "dates": len(dates),
        "channels": list(CHANNELS),
        "frames_kept": int(kept.sum()),
        "frames_dropped": int((~kept).sum()),
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

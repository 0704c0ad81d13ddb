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

import datetime as dt
import json
import logging

import numpy as np
import pystac
import xarray as xr
from rasterio import features as rasterio_features
from shapely.geometry import shape

from deep_lulc.shared.errors import NothingToDoError
from deep_lulc.shared.geo.grids import epsg_of, geobox_of
from deep_lulc.shared.geo.windows import blocks
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.preview import preview_stride, thumbnail_asset, true_colour_png
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.stac import iso, stamp_provenance
from deep_lulc.shared.products import features as features_product
from deep_lulc.shared.products.cube import open_cube
from deep_lulc.shared.products.features import ZARR_NAME
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.shared.sources.aoi import Aoi
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.features.indices import CHANNELS
from deep_lulc.stages.features.params import FeaturesInputs, FeaturesParams
from deep_lulc.stages.features.streaming import (
    CountJob,
    FeatureJob,
    assemble_preview,
    count_valid,
    run_all,
    run_windows,
)

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


def _frame_fractions(counts: list[np.ndarray], frames: int, inside: np.ndarray) -> np.ndarray:
    """Per frame, the fraction of the AOI's pixels with a usable observation."""
    total = np.sum(counts, axis=0) if counts else np.zeros(frames, dtype=np.int64)
    return np.asarray(total, dtype=np.float64) / max(int(inside.sum()), 1)


def _aoi_frames(
    params: FeaturesParams, jobs: list[CountJob], times: np.ndarray, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`--frame-filter aoi`: which frames have a valid fraction over the whole AOI of at least --min-valid,
    and every frame's fraction."""
    fractions = _frame_fractions(run_all(count_valid, jobs, address=params.dask_address), len(times), inside)
    kept = fractions >= params.min_valid
    if not kept.any():
        best = int(np.argmax(fractions))
        suggestion = max(0.0, float(np.floor(fractions[best] * 100) / 100))
        raise NothingToDoError(
            f"every one of {len(times)} frames is below --min-valid {params.min_valid} "
            f"(best {fractions[best]:.4f} on {iso(times[best])[:10]})",
            fix=f"lower --min-valid (e.g. {suggestion:.2f}) or extend the time range",
        )
    log.info("%d of %d frames kept (valid fraction >= %g)", int(kept.sum()), len(times), params.min_valid)
    return np.asarray(kept), fractions


@idempotent(STAGE)
def run(*, inputs: FeaturesInputs, output: str, params: FeaturesParams) -> StageResult:
    """Features for the cube at `inputs.cube`, written to `output`."""
    source = open_cube(inputs.cube)
    cube_item, cube = source
    grid = source.grid
    start = dt.datetime.fromisoformat(str(cube_item.properties["start_datetime"]).replace("Z", "+00:00")).date()
    end = dt.datetime.fromisoformat(str(cube_item.properties["end_datetime"]).replace("Z", "+00:00")).date()
    height, width = cube.sizes["y"], cube.sizes["x"]
    inside = aoi_mask(cube_item, (height, width))

    cube_store = source.location
    block = params.chunk_size
    grid_windows = blocks(height, width, block)
    times = cube.time.values
    aoi_kept: np.ndarray | None = None
    fractions = np.zeros(len(times), dtype=np.float64)
    if params.frame_filter == "aoi":
        count_jobs = [CountJob(cube_store, w, inside[w.slices], params.valid_scl) for w in grid_windows]
        aoi_kept, fractions = _aoi_frames(params, count_jobs, times, inside)
    used = np.flatnonzero(aoi_kept) if aoi_kept is not None else np.arange(len(times))
    dates = target_dates(start, end, params.step_days)
    source_days = _days_since(times[used], start)
    target_days = np.array([(d - start).days for d in dates], dtype=np.float64)
    time_coord = np.array([np.datetime64(d.isoformat(), "ns") for d in dates])
    identifier = f"features-{cube_item.id.removeprefix('cube-')}"

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        store = folder / ZARR_NAME
        features_product.create_store(
            store,
            grid=grid,
            times=time_coord,
            channels=CHANNELS,
            y=cube.y.values,
            x=cube.x.values,
            block=block,
            attrs={"start_datetime": cube.attrs.get("start_datetime"), "end_datetime": cube.attrs.get("end_datetime")},
        )
        frames = None if aoi_kept is None else tuple(int(i) for i in used)
        middle = len(dates) // 2
        red, green, blue = (CHANNELS.index(band) for band in ("B04", "B03", "B02"))
        stride = preview_stride(height, width)
        jobs = [
            FeatureJob(
                cube_store,
                ZarrLocation.at(str(store)),
                w,
                frames,
                params.valid_scl,
                source_days,
                target_days,
                inside[w.slices],
                middle,
                (red, green, blue),
                stride,
            )
            for w in grid_windows
        ]
        summaries = run_windows(jobs, address=params.dask_address)
        used_fractions = _frame_fractions([s.counts for s in summaries], len(used), inside)
        if aoi_kept is None:
            fractions = used_fractions
            kept = fractions > 0  # a frame is used wherever it is valid; "kept" says it is valid somewhere
            if not kept.any():
                raise NothingToDoError(
                    f"no pixel of the AOI has a usable observation in any of {len(times)} frames "
                    f"(SCL classes {list(params.valid_scl)}, every band present)",
                    fix="extend the time range or widen --valid-scl",
                )
            log.info("%d of %d frames valid somewhere in the AOI (per-pixel validity)", int(kept.sum()), len(times))
        else:
            kept = aoi_kept
        frames_record = [
            {"datetime": iso(t), "valid_fraction": round(float(f), 6), "kept": bool(k)}
            for t, f, k in zip(times, fractions, kept, strict=True)
        ]
        manifest = features_product.finish_store(store)
        rgb = assemble_preview(grid_windows, [summary.preview for summary in summaries], (height, width), stride)
        true_colour_png(rgb[0], rgb[1], rgb[2], folder / PREVIEW_NAME)
        never_valid = sum(summary.never_valid for summary in summaries)
        (folder / FRAMES_NAME).write_text(
            json.dumps(
                {
                    "frame_filter": params.frame_filter,
                    "min_valid": params.min_valid,
                    "valid_scl": list(params.valid_scl),
                    "frames": frames_record,
                },
                indent=2,
            )
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
            staged,
            item,
            catalog_id="features",
            description=f"Sentinel-2 features every {params.step_days} days",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )

    extra = {
        "features": storage.join_href(output, identifier, ZARR_NAME),
        "dates": len(dates),
        "channels": list(CHANNELS),
        "frames_kept": int(kept.sum()),
        "frames_dropped": int((~kept).sum()),
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

"""`deep-lulc features`: drop cloudy frames, compute FEATURES, interpolate onto a regular date grid.

Work streams block by block over space (every date of a block at once), so an AOI larger than memory
goes through with a peak set by the block size, not the AOI.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pystac
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine
from rasterio import features as rasterio_features
from shapely.geometry import shape

from deep_lulc.shared import storage
from deep_lulc.shared.aoi import Aoi
from deep_lulc.shared.contract import StageResult, finish_single_item_output
from deep_lulc.shared.errors import BadInputError, NothingToDoError
from deep_lulc.shared.preview import thumbnail_asset, true_colour_png
from deep_lulc.shared.publish import staged_output
from deep_lulc.shared.reruns import idempotent
from deep_lulc.shared.stac import DATACUBE_EXTENSION, PROJECTION_EXTENSION, iso, stamp_provenance
from deep_lulc.shared.zarr_items import zarr_asset, zarr_item
from deep_lulc.stages.features.indices import CHANNELS
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.features.streaming import (
    CountJob,
    FeatureJob,
    ZarrStore,
    compute_window,
    count_valid,
    run_all,
    windows,
)

STAGE = "features"
ZARR_NAME = "features.zarr"
PREVIEW_NAME = "preview.png"
FRAMES_NAME = "frames.json"
log = logging.getLogger(__name__)


def open_cube(href: str) -> tuple[pystac.Item, xr.Dataset]:
    """The cube item behind `href` (catalog or item) and its Zarr store, opened lazily."""
    return zarr_item(href, variables=("reflectance", "scl"), made_by="cube")


def aoi_mask(item: pystac.Item, shape_yx: tuple[int, int]) -> np.ndarray:
    """Pixels of the cube grid inside the AOI polygon (the cube covers its bounding box)."""
    epsg = int(str(item.properties["proj:code"]).split(":")[1])
    transform = Affine(*item.properties["proj:transform"][:6])
    geometry = Aoi(shape(item.geometry), source=item.id).projected(epsg)
    mask = rasterio_features.geometry_mask([geometry], out_shape=shape_yx, transform=transform, invert=True)
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


def _create_store(path: Path, times: np.ndarray, cube: xr.Dataset, *, epsg: int, transform: Affine, block: int) -> None:
    """Write the output store's metadata and coordinates; the windows fill in the data."""
    shape = (len(times), len(CHANNELS), cube.sizes["y"], cube.sizes["x"])
    template = xr.Dataset(
        {
            "features": (
                ("time", "channel", "y", "x"),
                da.empty(shape, chunks=(-1, -1, block, block), dtype=np.float32),
            ),
            "valid_count": (("y", "x"), da.zeros(shape[2:], chunks=(block, block), dtype=np.int16)),
        },
        coords={"time": times, "channel": list(CHANNELS), "y": cube.y.values, "x": cube.x.values},
        attrs={"start_datetime": cube.attrs.get("start_datetime"), "end_datetime": cube.attrs.get("end_datetime")},
    )
    template = template.rio.write_crs(f"EPSG:{epsg}").rio.write_transform(transform)
    encoding = {
        "features": {"chunks": (len(times), len(CHANNELS), block, block)},
        "valid_count": {"chunks": (block, block)},
    }
    template.to_zarr(path, mode="w", compute=False, encoding=encoding, zarr_format=2, consolidated=True)


@idempotent(STAGE)
def run(*, inputs: Mapping[str, str], output: str, params: FeaturesParams) -> StageResult:
    """Features for the cube at `inputs['cube']`, written to `output`."""
    if "cube" not in inputs:
        raise BadInputError("missing input 'cube'", fix="pass --cube HREF (the cube stage's catalog.json)")
    cube_item, cube = open_cube(inputs["cube"])
    start = dt.datetime.fromisoformat(str(cube_item.properties["start_datetime"]).replace("Z", "+00:00")).date()
    end = dt.datetime.fromisoformat(str(cube_item.properties["end_datetime"]).replace("Z", "+00:00")).date()
    height, width = cube.sizes["y"], cube.sizes["x"]
    inside = aoi_mask(cube_item, (height, width))

    cube_store = ZarrStore.at(cube_item.assets["data"].get_absolute_href() or "")
    block = params.chunk_size
    grid_windows = windows(height, width, block)
    counts = run_all(
        count_valid,
        [CountJob(cube_store, w, inside[w.y0 : w.y1, w.x0 : w.x1], params.valid_scl) for w in grid_windows],
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
    epsg = int(str(cube_item.properties["proj:code"]).split(":")[1])
    transform = Affine(*cube_item.properties["proj:transform"][:6])
    identifier = f"features-{cube_item.id.removeprefix('cube-')}"

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        store = folder / ZARR_NAME
        _create_store(store, time_coord, cube, epsg=epsg, transform=transform, block=block)
        jobs = [
            FeatureJob(
                cube_store, ZarrStore.at(str(store)), w, tuple(int(i) for i in np.flatnonzero(kept)),
                params.valid_scl, source_days, target_days,
            )
            for w in grid_windows
        ]  # fmt: skip
        run_all(compute_window, jobs, address=params.dask_address)
        stored = xr.open_zarr(store, consolidated=True)
        middle = len(dates) // 2
        rgb = stored["features"].isel(time=middle).sel(channel=["B04", "B03", "B02"]).values
        true_colour_png(rgb[0], rgb[1], rgb[2], folder / PREVIEW_NAME)
        never_valid = int((stored["valid_count"].values[inside] == 0).sum())
        (folder / FRAMES_NAME).write_text(
            json.dumps({"min_valid": params.min_valid, "valid_scl": list(params.valid_scl), "frames": frames}, indent=2)
            + "\n"
        )
        item = pystac.Item(
            id=identifier,
            geometry=cube_item.geometry,
            bbox=cube_item.bbox,
            datetime=None,
            properties={
                "start_datetime": cube_item.properties["start_datetime"],
                "end_datetime": cube_item.properties["end_datetime"],
                "proj:code": cube_item.properties["proj:code"],
                "proj:shape": [height, width],
                "proj:transform": cube_item.properties["proj:transform"],
                **_datacube_fields(cube_item, time_coord),
                "deep-lulc:step_days": params.step_days,
                "deep-lulc:frames_kept": int(kept.sum()),
                "deep-lulc:frames_dropped": int((~kept).sum()),
                "deep-lulc:pixels_never_valid": never_valid,
            },
            stac_extensions=[PROJECTION_EXTENSION, DATACUBE_EXTENSION],
        )
        item.add_asset("data", zarr_asset(str(folder / ZARR_NAME), title="Interpolated features"))
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

    return StageResult(
        stage=STAGE,
        catalog=catalog_href,
        items=(identifier,),
        extra={
            "features": storage.join_href(output, identifier, ZARR_NAME),
            "dates": len(dates),
            "channels": list(CHANNELS),
            "frames_kept": int(kept.sum()),
            "frames_dropped": int((~kept).sum()),
        },
    )


def _datacube_fields(cube_item: pystac.Item, times: np.ndarray) -> dict[str, Any]:
    dimensions = dict(cube_item.properties["cube:dimensions"])
    dimensions.pop("band", None)
    dimensions["time"] = {
        "type": "temporal",
        "extent": [iso(times[0]), iso(times[-1])],
        "values": [iso(t) for t in times],
    }
    dimensions["channel"] = {"type": "bands", "values": list(CHANNELS)}
    return {
        "cube:dimensions": dimensions,
        "cube:variables": {
            "features": {
                "dimensions": ["time", "channel", "y", "x"],
                "type": "data",
                "description": "Bands and indices, linearly interpolated over cloud-free observations",
            },
            "valid_count": {
                "dimensions": ["y", "x"],
                "type": "auxiliary",
                "description": "Valid observations per pixel among the kept frames (0: no data, features NaN)",
            },
        },
    }

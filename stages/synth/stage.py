"""`deep-lulc synth`: write the synthetic Sentinel-2 L2A catalog, its labels and AOIs."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac

from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.io.cog import write_cog
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.stage.contract import NoInputs, StageResult, write_params_file
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.synth.items import build_item, collection_for, footprint_wgs84, item_id
from deep_lulc.stages.synth.landscape import (
    Landscape,
    LandscapeChange,
    evolve_landscape,
    generate_landscape,
    scene_grid,
)
from deep_lulc.stages.synth.params import SynthParams
from deep_lulc.stages.synth.scenes import Scene, SceneContext, plan_acquisitions, render_scene
from deep_lulc.stages.synth.truth import PREDICT_WINDOW, TRAIN_WINDOW, labels_item, write_aoi, write_labels

STAGE = "synth"
COLLECTION_DIR = "sentinel-2-l2a"
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B11", "B12")
log = logging.getLogger(__name__)


def reflectance_to_dn(reflectance: np.ndarray) -> np.ndarray:
    """Encode reflectance as L2A DN (baseline >= 04.00): DN = (reflectance + 0.1) / 0.0001; NaN -> 0 (nodata)."""
    dn = np.round((reflectance - sentinel2.BOA_OFFSET) / sentinel2.REFLECTANCE_SCALE)
    dn = np.clip(np.nan_to_num(dn, nan=0.0), 1, 65535)
    dn[np.isnan(reflectance)] = 0
    return dn.astype(np.uint16)


def write_scene_cogs(scene: Scene, grid: GeoBox, folder: Path) -> dict[str, Path]:
    """One COG per band, named by band id like the providers' files."""
    grid20 = grid.zoom_out(2)
    layers: list[tuple[str, np.ndarray, GeoBox, str]] = [
        *((band, reflectance_to_dn(scene.reflectance_10m[i]), grid, "average") for i, band in enumerate(BANDS_10M)),
        *((band, reflectance_to_dn(scene.reflectance_20m[i]), grid20, "average") for i, band in enumerate(BANDS_20M)),
        (sentinel2.SCL_BAND, scene.scl, grid20, "nearest"),  # classes: overviews must not average them
    ]
    files: dict[str, Path] = {}
    for band, array, band_grid, resampling in layers:
        files[band] = write_cog(
            folder / f"{band}.tif",
            array,
            transform=band_grid.affine,
            epsg=epsg_of(grid),
            nodata=0,
            overview_resampling=resampling,
        )
    return files


@dataclass(frozen=True)
class Period:
    """One synthetic year as written: its imagery items, its ground-truth item and the manifest's records."""

    imagery: list[pystac.Item]
    truth: pystac.Item
    records: list[dict[str, Any]]


def write_period(
    landscape: Landscape, *, year: int, labels_name: str, grid: GeoBox, root: Path, params: SynthParams
) -> Period:
    """Render and write every acquisition of `year` over `landscape`, then its labels."""
    context = SceneContext.build(landscape, seed=params.seed, year=year)
    imagery: list[pystac.Item] = []
    records: list[dict[str, Any]] = []
    for acquisition in plan_acquisitions(seed=params.seed, year=year, count=params.dates):
        scene = render_scene(context, acquisition)
        files = write_scene_cogs(scene, grid, root / COLLECTION_DIR / item_id(scene, params.asset_style))
        item = build_item(scene, grid=grid, style=params.asset_style, files=files)
        imagery.append(item)
        records.append(
            {
                "id": item.id,
                "datetime": acquisition.datetime.isoformat().replace("+00:00", "Z"),
                "sky": acquisition.sky.value,
                "swath_edge": acquisition.swath_edge,
                "cloud_fraction": round(float(scene.cloud.mean()), 6),
                "shadow_fraction": round(float(scene.shadow.mean()), 6),
                "nodata_fraction": round(float(scene.nodata.mean()), 6),
                "valid_fraction": round(1.0 - scene.invalid_fraction, 6),
            }
        )
    log.info("period %d: %d acquisitions written", year, len(imagery))
    write_labels(landscape, root / labels_name)
    truth = labels_item(landscape, year=year, labels_path=root / labels_name, sources=imagery)
    return Period(imagery=imagery, truth=truth, records=records)


def save_catalog(periods: list[Period], *, grid: GeoBox, root: Path, params: SynthParams) -> None:
    """The imagery collection (shaped like the chosen provider's) and the ground-truth collection."""
    years = (params.year, params.year + 1)
    catalog = pystac.Catalog(
        id="deep-lulc-synthetic",
        title="Deep LULC synthetic Sentinel-2 catalog",
        description=f"Synthetic Sentinel-2 L2A time series, labels and AOIs for {years[0]} and {years[1]} "
        f"(seed {params.seed}, {params.size} x {params.size} px at 10 m).",
    )
    imagery = [item for period in periods for item in period.imagery]
    collection = collection_for(imagery, grid=grid, style=params.asset_style)
    collection.add_items(imagery)
    catalog.add_child(collection)
    truth = pystac.Collection(
        id="labels",
        title="Synthetic ground truth",
        description="LULC parcels per period (GeoPackage, column `lulc`, Slovenia class scheme).",
        extent=pystac.Extent(pystac.SpatialExtent([list(footprint_wgs84(grid).bounds)]), collection.extent.temporal),
        license="CC0-1.0",
    )
    truth.add_items([period.truth for period in periods])
    catalog.add_child(truth)
    save_self_contained(catalog, root)


def manifest(
    landscapes: tuple[Landscape, Landscape],
    changes: tuple[LandscapeChange, ...],
    records: list[dict[str, Any]],
    *,
    grid: GeoBox,
    params: SynthParams,
) -> dict[str, Any]:
    """synth.json: what the catalog holds in truth (class fractions, changed parcels, each date's sky)."""
    first, second = landscapes
    years = (params.year, params.year + 1)
    return {
        "seed": params.seed,
        "size": params.size,
        "crs": f"EPSG:{epsg_of(grid)}",
        "transform": list(grid.affine)[:6],
        "asset_style": params.asset_style,
        "periods": [
            {"year": years[0], "labels": "labels.gpkg", "class_fractions": _fractions(first.class_fractions())},
            {
                "year": years[1],
                "labels": f"labels-{years[1]}.gpkg",
                "class_fractions": _fractions(second.class_fractions()),
            },
        ],
        "changes": [{"parcel_id": c.parcel_id, "from": c.before.value, "to": c.after.value} for c in changes],
        "aois": {"train": "aoi-train.geojson", "predict": "aoi-predict.geojson"},
        "acquisitions": records,
    }


@idempotent(STAGE)
def run(*, inputs: NoInputs, output: str, params: SynthParams) -> StageResult:
    """Generate the catalog for `params.seed` into `output` (synth reads nothing)."""
    grid = scene_grid(params.size)
    years = (params.year, params.year + 1)
    with staged_output(output) as staged:
        root = staged.path
        first = generate_landscape(grid, seed=params.seed)
        second, changes = evolve_landscape(first, seed=params.seed)
        periods = [
            write_period(landscape, year=year, labels_name=name, grid=grid, root=root, params=params)
            for year, landscape, name in zip(
                years, (first, second), ("labels.gpkg", f"labels-{years[1]}.gpkg"), strict=True
            )
        ]
        write_aoi(grid, TRAIN_WINDOW, root / "aoi-train.geojson", "train")
        write_aoi(grid, PREDICT_WINDOW, root / "aoi-predict.geojson", "predict")
        save_catalog(periods, grid=grid, root=root, params=params)
        records = [record for period in periods for record in period.records]
        document = manifest((first, second), changes, records, grid=grid, params=params)
        (root / "synth.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        write_params_file(root, stage=STAGE, inputs=inputs, params=params)
        catalog_href = staged.publish()

    return StageResult(
        stage=STAGE,
        catalog=catalog_href,
        items=tuple(item.id for period in periods for item in period.imagery),
        extra={
            "collection": "sentinel-2-l2a",
            "labels": join_href(output, "labels.gpkg"),
            "aoi_train": join_href(output, "aoi-train.geojson"),
            "aoi_predict": join_href(output, "aoi-predict.geojson"),
            "periods": [f"{y}-01-01/{y}-12-31" for y in years],
            "clear_dates": sum(1 for record in records if record["valid_fraction"] >= 0.99),
        },
    )


def _fractions(fractions: dict[int, float]) -> dict[str, float]:
    return {str(value): round(share, 5) for value, share in fractions.items()}

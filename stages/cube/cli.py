"""Command-line adapter of `deep-lulc cube`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.shared.scene_selection import (
    AOI_OPTION,
    COLLECTION_OPTION,
    END_OPTION,
    MAX_CLOUD_OPTION,
    PAGE_SIZE_OPTION,
    STAC_OPTION,
    START_OPTION,
)
from deep_lulc.stages.cube import stage
from deep_lulc.stages.cube.params import CubeParams

EPILOG = """
Example:

  deep-lulc cube --stac demo-output/synth/catalog.json --collection sentinel-2-l2a
  --aoi demo-output/synth/aoi-train.geojson --start 2023-01-01 --end 2023-12-31 --out demo-output/cube
"""


def cube(
    stac: str = STAC_OPTION,
    aoi: str = AOI_OPTION,
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    collection: str = COLLECTION_OPTION,
    start: str = START_OPTION,
    end: str = END_OPTION,
    max_cloud: float | None = MAX_CLOUD_OPTION,
    resolution: float = typer.Option(10.0, "--resolution", help="Pixel size in metres."),
    loader: str = typer.Option("odc-stac", "--loader", help="odc-stac or stackstac."),
    dask_address: str | None = typer.Option(None, "--dask-address", help="Existing dask scheduler address."),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Spatial chunk of the Zarr store in pixels."),
    page_size: int = PAGE_SIZE_OPTION,
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Load B02 B03 B04 B08 B11 B12 and SCL onto the AOI's UTM grid as a Zarr datacube item."""

    def call() -> StageResult:
        params = validate_params(
            CubeParams,
            {
                "overwrite": overwrite,
                "collection": collection,
                "start": start,
                "end": end,
                "max_cloud": max_cloud,
                "page_size": page_size,
                "resolution": resolution,
                "loader": loader,
                "dask_address": dask_address,
                "chunk_size": chunk_size,
            },
        )
        return stage.run(inputs={"stac": stac, "aoi": aoi}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

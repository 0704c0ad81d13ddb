"""Command-line adapter of `deep-lulc search`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, execute
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
from deep_lulc.stages.search import stage
from deep_lulc.stages.search.params import SearchParams

EPILOG = """
Example:

  deep-lulc search --stac https://earth-search.aws.element84.com/v1 --collection sentinel-2-l2a
  --aoi aoi.geojson --start 2023-01-01 --end 2023-12-31 --max-cloud 60 --out items.json
"""


def search(
    stac: str = STAC_OPTION,
    aoi: str = AOI_OPTION,
    out: str = typer.Option(..., "--out", help="ItemCollection JSON file to write (local or s3://)."),
    collection: str = COLLECTION_OPTION,
    start: str = START_OPTION,
    end: str = END_OPTION,
    max_cloud: float | None = MAX_CLOUD_OPTION,
    page_size: int = PAGE_SIZE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """List the scenes of a collection over an AOI and a time range (one line per date on stderr)."""

    def call() -> StageResult:
        params = validate_params(
            SearchParams,
            {
                "collection": collection,
                "start": start,
                "end": end,
                "max_cloud": max_cloud,
                "page_size": page_size,
            },
        )
        return stage.run(inputs={"stac": stac, "aoi": aoi}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

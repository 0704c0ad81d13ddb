"""Command-line adapter of `deep-lulc merge`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.merge import stage
from deep_lulc.stages.merge.params import MergeParams

EPILOG = """
Example:

  deep-lulc merge s3://bucket/run/tiles/r000-c000/catalog.json s3://bucket/run/tiles/r000-c001/catalog.json
  --out s3://bucket/run/prediction
"""


TILES_ARGUMENT = typer.Argument(..., help="Tile prediction catalogs (one per `predict --tile`).")


def merge(
    tiles: list[str] = TILES_ARGUMENT,
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Leave absent tiles as nodata."),
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Mosaic tile predictions into one COG + item, identical to a single-process prediction."""

    def call() -> StageResult:
        params = validate_params(MergeParams, {"allow_missing": allow_missing})
        return stage.run(inputs={f"tile_{i:04d}": href for i, href in enumerate(tiles)}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

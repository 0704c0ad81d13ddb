"""Command-line adapter of `deep-lulc features`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.features import stage
from deep_lulc.stages.features.params import FeaturesParams

EPILOG = """
Example:

  deep-lulc features --cube demo-output/cube/catalog.json --out demo-output/features --min-valid 0.99 --step-days 16
"""


def _classes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise BadInputError(f"--valid-scl {text!r} is not a list of integers", fix="write e.g. 4,5,6,7,11") from exc


def features(
    cube: str = typer.Option(..., "--cube", help="The cube stage's catalog.json (or cube item) href."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    min_valid: float = typer.Option(0.99, "--min-valid", help="Keep frames with at least this valid fraction."),
    step_days: int = typer.Option(16, "--step-days", help="Days between interpolated dates."),
    valid_scl: str = typer.Option("4,5,6,7,11", "--valid-scl", help="SCL classes counted as valid."),
    chunk_size: int = typer.Option(256, "--chunk-size", help="Spatial block in pixels."),
    dask_address: str | None = typer.Option(None, "--dask-address", help="Existing dask scheduler address."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Cloud-filter the cube's frames and interpolate bands + NDVI/NDWI/NDBI onto a regular date grid."""

    def call() -> StageResult:
        params = validate_params(
            FeaturesParams,
            {
                "overwrite": overwrite,
                "min_valid": min_valid,
                "step_days": step_days,
                "valid_scl": _classes(valid_scl),
                "chunk_size": chunk_size,
                "dask_address": dask_address,
            },
        )
        return stage.run(inputs={"cube": cube}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

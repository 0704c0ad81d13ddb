"""Command-line adapter of `deep-lulc change`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.change import stage
from deep_lulc.stages.change.params import ChangeParams

EPILOG = """
Example:

  deep-lulc change --before demo-output/predict-2019/catalog.json --after demo-output/predict-2023/catalog.json
  --out demo-output/change
"""


def change(
    before: str = typer.Option(..., "--before", help="Catalog or item of the earlier map (deep-lulc predict)."),
    after: str = typer.Option(..., "--after", help="Catalog or item of the later map (deep-lulc predict)."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    classes: str | None = typer.Option(None, "--classes", help="Class scheme YAML/JSON the maps must use."),
    block_size: int = typer.Option(512, "--block-size", help="Side of the window processed at a time, in px."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Transition map (from-class -> to-class per pixel), area matrix in hectares and net change per class."""

    def call() -> StageResult:
        params = validate_params(ChangeParams, {"overwrite": overwrite, "classes": classes, "block_size": block_size})
        return stage.run(inputs={"before": before, "after": after}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

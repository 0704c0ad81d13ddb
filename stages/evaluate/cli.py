"""Command-line adapter of `deep-lulc evaluate`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.evaluate import stage
from deep_lulc.stages.evaluate.params import EvaluateParams

EPILOG = """
Examples:

  deep-lulc evaluate --prediction demo-output/predict/catalog.json --labels labels-2023.gpkg
  --out demo-output/evaluate --class-column lulc --erosion-radius 1

  deep-lulc evaluate --prediction demo-output/change/catalog.json --labels labels-2023.gpkg
  --before-labels labels-2019.gpkg --out demo-output/evaluate-change
"""


def evaluate(
    prediction: str = typer.Option(
        ..., "--prediction", help="Catalog or item of a map (deep-lulc predict) or a change map (deep-lulc change)."
    ),
    labels: str = typer.Option(
        ...,
        "--labels",
        help="Reference polygons (any OGR format and CRS); for a change map, those of the later period.",
    ),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    class_column: str = typer.Option("lulc", "--class-column", help="Attribute holding the class codes."),
    class_map: str | None = typer.Option(None, "--class-map", help="YAML/JSON/CSV: source code or name -> class."),
    erosion_radius: int = typer.Option(0, "--erosion-radius", help="Disk radius eroding each label class."),
    before_labels: str | None = typer.Option(
        None, "--before-labels", help="Reference polygons of the earlier period (change maps only)."
    ),
    block_size: int = typer.Option(512, "--block-size", help="Side of the window processed at a time, in px."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Per-class IoU/precision/recall/F1 of a map against labels, or change-detection accuracy of a change map."""

    def call() -> StageResult:
        params = validate_params(
            EvaluateParams,
            {"overwrite": overwrite,
             "class_column": class_column, "class_map": class_map, "erosion_radius": erosion_radius,
             "block_size": block_size},
        )  # fmt: skip
        inputs = {"prediction": prediction, "labels": labels}
        if before_labels is not None:
            inputs["before_labels"] = before_labels
        return stage.run(inputs=inputs, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

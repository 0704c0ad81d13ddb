"""Command-line adapter of `deep-lulc change`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.change import stage
from deep_lulc.stages.change.params import ChangeParams

DEFAULTS = {name: field.default for name, field in ChangeParams.model_fields.items()}

EPILOG = """
Examples:

  deep-lulc change --before demo-output/predict-2019/catalog.json --after demo-output/predict-2023/catalog.json
  --out demo-output/change

  deep-lulc change --before p2019/catalog.json --after p2023/catalog.json --out change-raw --method raw
"""


def change(
    before: str = typer.Option(..., "--before", help="Catalog or item of the earlier map (deep-lulc predict)."),
    after: str = typer.Option(..., "--after", help="Catalog or item of the later map (deep-lulc predict)."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    classes: str | None = typer.Option(None, "--classes", help="Class scheme YAML/JSON the maps must use."),
    block_size: int = typer.Option(512, "--block-size", help="Side of the window processed at a time, in px."),
    method: str = typer.Option(
        DEFAULTS["method"], "--method", help="joint (both periods' probabilities, slivers and specks dropped) or raw."
    ),
    same_class_below: float = typer.Option(
        DEFAULTS["same_class_below"],
        "--same-class-below",
        help="joint: change only where P(same class in both periods) is below this.",
    ),
    min_confidence: float = typer.Option(
        DEFAULTS["min_confidence"],
        "--min-confidence",
        help="joint: and where each period's class has at least this probability.",
    ),
    opening_radius: int = typer.Option(
        DEFAULTS["opening_radius"],
        "--opening-radius",
        help="joint: remove changed strips narrower than 2 * radius + 1 px (0: none).",
    ),
    min_mapping_unit: float = typer.Option(
        DEFAULTS["min_mapping_unit"],
        "--min-mapping-unit",
        help="joint: drop changed regions smaller than this, in hectares (0: none).",
    ),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Transition map (from-class -> to-class per pixel), area matrix in hectares and net change per class."""

    def call() -> StageResult:
        params = validate_params(
            ChangeParams,
            {"overwrite": overwrite, "classes": classes, "block_size": block_size, "method": method,
             "same_class_below": same_class_below, "min_confidence": min_confidence,
             "opening_radius": opening_radius, "min_mapping_unit": min_mapping_unit},
        )  # fmt: skip
        return stage.run(inputs={"before": before, "after": after}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

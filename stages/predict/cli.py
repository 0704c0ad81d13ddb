"""Command-line adapters of `deep-lulc predict` and `deep-lulc plan-tiles`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.predict.params import PlanTilesParams, PredictParams

PREDICT_EPILOG = """
Examples:

  deep-lulc predict --model demo-output/model/catalog.json --features demo-output/features-2023/catalog.json
  --out demo-output/prediction-2023

  One tile of a fan-out (see plan-tiles), then `deep-lulc merge`:

  deep-lulc predict --model M --features F --out s3://bucket/run/tiles/r000-c001 --tile r000-c001
  --tiles s3://bucket/run/tiles.json
"""

PLAN_EPILOG = """
Example:

  deep-lulc plan-tiles --features demo-output/features-2023/catalog.json --tile-size 2048 --out tiles.json
"""


def predict(
    model: str = typer.Option(..., "--model", help="The train stage's catalog.json (model item) href."),
    features: str = typer.Option(..., "--features", help="The features stage's catalog.json href."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    tile_size: int | None = typer.Option(
        None, "--tile-size", help="Inference window edge in px (default 512, or the tiles file's)."
    ),
    overlap: int | None = typer.Option(
        None, "--overlap", help="Overlap of neighbouring windows in px (default 64, or the tiles file's)."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="Windows per forward pass (default 1 on CPU, 8 on CUDA)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    probabilities: bool = typer.Option(False, "--probabilities", help="Also write a class-probability COG."),
    tile: str | None = typer.Option(None, "--tile", help="Predict only this tile id of --tiles."),
    tiles: str | None = typer.Option(None, "--tiles", help="Tiles file from `deep-lulc plan-tiles`."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Map LULC classes over the features grid (or one tile of it) with a trained model; writes a COG."""

    def call() -> StageResult:
        params = validate_params(
            PredictParams,
            {"overwrite": overwrite,
             "tile_size": tile_size, "overlap": overlap, "batch_size": batch_size, "device": device,
             "probabilities": probabilities, "tile": tile, "tiles": tiles},
        )  # fmt: skip
        from deep_lulc.stages.predict import stage  # torch loads only when predicting

        return stage.run(inputs={"model": model, "features": features}, output=out, params=params)

    execute("predict", call, debug=debug, outputs_dir=outputs_dir)


def plan_tiles(
    features: str = typer.Option(..., "--features", help="The features stage's catalog.json href."),
    out: str = typer.Option(..., "--out", help="Where to write tiles.json (local path or s3:// URL)."),
    tile_size: int = typer.Option(2048, "--tile-size", help="Edge of each tile's own region in px."),
    window_size: int = typer.Option(512, "--window-size", help="predict's --tile-size (inference window)."),
    overlap: int = typer.Option(64, "--overlap", help="predict's --overlap."),
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Split the features grid into tiles for `predict --tile` (a JSON array for Argo's withParam)."""

    def call() -> StageResult:
        params = validate_params(
            PlanTilesParams, {"tile_size": tile_size, "window_size": window_size, "overlap": overlap}
        )
        from deep_lulc.stages.predict import tiles

        return tiles.run(inputs={"features": features}, output=out, params=params)

    execute("plan-tiles", call, debug=debug, outputs_dir=outputs_dir)

"""Command-line adapter of `deep-lulc synth`: parse options, validate params, call `run`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.synth import stage
from deep_lulc.stages.synth.params import SynthParams

EPILOG = """
Example:

  deep-lulc synth --out data/synth --seed 0 --size 512 --dates 24 --year 2023
"""


def synth(
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix for catalog.json and its assets."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical output."),
    size: int = typer.Option(512, help="Scene size in 10 m pixels (multiple of 16)."),
    dates: int = typer.Option(24, help="Acquisitions per year."),
    year: int = typer.Option(2023, help="First year; a second period covers the next year, with land-cover changes."),
    asset_style: str = typer.Option("earth-search", help="Asset keys like earth-search or planetary-computer."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Write a synthetic Sentinel-2 L2A STAC catalog with labels and AOIs (the offline default)."""

    def call() -> StageResult:
        params = validate_params(
            SynthParams,
            {
                "overwrite": overwrite,
                "seed": seed,
                "size": size,
                "dates": dates,
                "year": year,
                "asset_style": asset_style,
            },
        )
        return stage.run(inputs={}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

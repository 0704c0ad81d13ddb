"""Command-line adapter of `deep-lulc demo`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.demo.params import DemoParams

STAGE = "demo"

EPILOG = """
Example:

  deep-lulc demo --out demo-output
"""


def demo(
    out: str = typer.Option("demo-output", "--out", help="Directory or s3:// prefix for every stage's output."),
    seed: int = typer.Option(0, help="Seed of the synthetic catalog."),
    size: int = typer.Option(512, help="Synthetic scene size in 10 m pixels."),
    dates: int = typer.Option(24, help="Acquisitions per year."),
    epochs: int = typer.Option(20, help="Training epochs of the deep model."),
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Run the whole chain on the embedded synthetic catalog (no network needed)."""

    def call() -> StageResult:
        params = validate_params(DemoParams, {"seed": seed, "size": size, "dates": dates, "epochs": epochs})
        from deep_lulc.stages.demo import stage  # imports every stage, torch and fastai included

        result = stage.run(inputs={}, output=out, params=params)
        print("\n".join(["", *result.extra["summary"], ""]), file=sys.stderr, flush=True)
        return result

    execute(STAGE, call, debug=debug, outputs_dir=outputs_dir)

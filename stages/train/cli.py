"""Command-line adapter of `deep-lulc train`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.train.params import TrainParams

STAGE = "train"

EPILOG = """
Example:

  deep-lulc train --chips demo-output/chips/catalog.json --out demo-output/model --baseline lightgbm

  deep-lulc train --chips demo-output/chips/catalog.json --out demo-output/model-lightgbm --architecture lightgbm
"""


def train(
    chips: str = typer.Option(..., "--chips", help="The chips stage's catalog.json href."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    architecture: str = typer.Option(
        "temporal-unet", "--architecture", help="temporal-unet (default), unet (fastai Dynamic U-Net) or lightgbm."
    ),
    encoder: str = typer.Option("resnet34", "--encoder", help="resnet18, resnet34 or resnet50 (unet)."),
    input_mode: str = typer.Option("stack", "--input-mode", help="stack (all dates as channels) or single-date."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs (one-cycle schedule over all of them)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    lr: str | None = typer.Option(
        None, "--lr", help="A number, or 'auto' (LR finder); default: the architecture's tuned rate."
    ),
    loss: str = typer.Option("weighted-ce", "--loss", help="ce, weighted-ce, focal or dice-ce."),
    pretrained: bool | None = typer.Option(
        None, "--pretrained/--no-pretrained", help="ImageNet encoder weights (unet; default: yes for unet)."
    ),
    weights: str | None = typer.Option(None, "--weights", help="Local encoder weights file."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint."),
    baseline: str | None = typer.Option(None, "--baseline", help="lightgbm: also train a pixel classifier."),
    patience: int = typer.Option(10, "--patience", help="Early-stopping patience in epochs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Train a model on the chips (temporal U-Net, fastai Dynamic U-Net or LightGBM), validate it as maps, and
    publish it as a STAC MLM model item."""

    def call() -> StageResult:
        params = validate_params(
            TrainParams,
            {"overwrite": overwrite,
                "architecture": architecture,
                "encoder": encoder, "input_mode": input_mode, "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "loss": loss, "pretrained": pretrained, "weights": weights, "resume": resume, "baseline": baseline,
                "patience": patience, "device": device, "seed": seed,
            },
        )  # fmt: skip
        from deep_lulc.stages.train import stage  # torch and fastai load only when training

        return stage.run(inputs={"chips": chips}, output=out, params=params)

    execute(STAGE, call, debug=debug, outputs_dir=outputs_dir)

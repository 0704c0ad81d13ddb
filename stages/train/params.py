"""Parameters of `deep-lulc train`."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from deep_lulc.shared.architectures import Architecture
from deep_lulc.shared.contract import StageInputs, StageParams

Encoder = Literal["resnet18", "resnet34", "resnet50"]
InputMode = Literal["stack", "single-date"]
LossName = Literal["ce", "weighted-ce", "focal", "dice-ce"]
# Peak learning rates measured on the demo scene (benchmarks/quality.py); the LR finder is optional.
DEFAULT_LR = {"temporal-unet": 3e-3, "unet": 2e-3}


class TrainInputs(StageInputs):
    chips: str = Field(description="The chips stage's catalog.json href.")


class TrainParams(StageParams):
    """Train a model on the chips (temporal U-Net, fastai Dynamic U-Net or LightGBM), validate it as maps, and
    publish it as a STAC MLM model item.
    """

    architecture: Architecture = Field(
        "temporal-unet",
        description="temporal-unet: per-pixel temporal attention encoder + compact U-Net (the default); unet: "
        "fastai Dynamic U-Net on a ResNet over the stacked dates (the original); lightgbm: pixel classifier.",
    )
    encoder: Encoder = Field("resnet34", description="ResNet encoder of the unet architecture.")
    input_mode: InputMode = Field(
        "stack", description="stack: all features x dates as channels; single-date: one date per sample (unet)."
    )
    epochs: int = Field(20, ge=1, le=1000, description="Training epochs (one-cycle schedule over all of them).")
    batch_size: int = Field(8, ge=1, le=4096, description="Chips per optimisation step.")
    lr: float | Literal["auto"] | None = Field(
        None, description="Peak learning rate, 'auto' for fastai's LR finder, default: the architecture's tuned rate."
    )
    loss: LossName = Field(
        "weighted-ce", description="Loss: cross-entropy, class-weighted cross-entropy, focal, or dice + cross-entropy."
    )
    pretrained: bool | None = Field(
        None, description="Start the unet encoder from ImageNet weights (downloaded by torchvision); default: yes "
        "for unet, which alone has an ImageNet encoder.",
    )  # fmt: skip
    weights: str | None = Field(None, description="Local encoder weights (safetensors or a torchvision state dict).")
    resume: bool | None = Field(
        None,
        description="Checkpoints live in <out>/checkpoints/ (an s3:// output's too, copied there after every "
        "epoch) and stay after success. Default: continue them only when they are this request's (same inputs, "
        "params, version), so a retried run picks up where it was killed; else start afresh. --resume: continue "
        "whatever is there; --no-resume (or --overwrite): start afresh.",
    )
    baseline: Literal["lightgbm"] | None = Field(
        None, description="Also train a LightGBM pixel classifier on the same chips and report both."
    )
    patience: int = Field(10, ge=1, le=1000, description="Epochs without validation mIoU gain before stopping.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU.")
    seed: int = Field(0, ge=0, description="Seed of every random generator; the same seed gives the same weights.")

    @field_validator("lr", mode="before")
    @classmethod
    def _parse_lr(cls, value: object) -> object:
        if isinstance(value, str) and value != "auto":
            try:
                return float(value)
            except ValueError as exc:
                raise ValueError("must be 'auto' or a number such as 1e-3") from exc
        return value

    @field_validator("lr")
    @classmethod
    def _positive(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0 < value < 10:
            raise ValueError("must be in (0, 10)")
        return value

    @model_validator(mode="after")
    def _fits_architecture(self) -> Self:
        """Options that only a network (or only the ImageNet U-Net) has are refused for the others."""
        if self.architecture == "unet":
            return self
        needs_unet = [
            option
            for option, given in (
                ("--pretrained", self.pretrained is True),
                ("--weights", self.weights is not None),
                ("--input-mode single-date", self.input_mode == "single-date"),
            )
            if given
        ]
        if self.architecture == "lightgbm":
            needs_unet += [option for option, given in (("--resume", self.resume), ("--lr", self.lr is not None))
                           if given]  # fmt: skip
        if needs_unet:
            network = "network" if self.architecture == "lightgbm" else "ImageNet U-Net"
            raise ValueError(
                f"{', '.join(needs_unet)} need(s) a {network}, but --architecture is {self.architecture}: use "
                f"--architecture unet{' or temporal-unet' if self.architecture == 'lightgbm' else ''}, or drop "
                "the option"
            )
        return self

    @property
    def use_pretrained(self) -> bool:
        return self.architecture == "unet" and self.pretrained is not False

    def peak_lr(self) -> float | None:
        """The learning rate to train with; None: find it (LR finder)."""
        if self.lr == "auto":
            return None
        if self.lr is None:
            return DEFAULT_LR.get(self.architecture, 2e-3)
        return float(self.lr)

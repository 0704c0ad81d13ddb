"""Parameters of `deep-lulc train`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deep_lulc.shared.contract import StageParams

Encoder = Literal["resnet18", "resnet34", "resnet50"]
InputMode = Literal["stack", "single-date"]
LossName = Literal["ce", "weighted-ce", "focal", "dice-ce"]


class TrainParams(StageParams):
    encoder: Encoder = "resnet34"
    input_mode: InputMode = Field(
        "stack", description="stack: all features x dates as channels; single-date: one date per sample."
    )
    epochs: int = Field(10, ge=1, le=1000)
    batch_size: int = Field(8, ge=1, le=4096)
    lr: float | Literal["auto"] = Field("auto", description="Peak learning rate, or 'auto' for fastai's LR finder.")
    loss: LossName = "weighted-ce"
    pretrained: bool = Field(True, description="Start the encoder from ImageNet weights (downloaded by torchvision).")
    weights: str | None = Field(None, description="Local encoder weights (safetensors or a torchvision state dict).")
    resume: bool = Field(False, description="Continue from the last checkpoint in the output's checkpoints/ folder.")
    baseline: Literal["lightgbm"] | None = None
    patience: int = Field(5, ge=1, le=1000, description="Epochs without validation mIoU gain before stopping.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0)

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
    def _positive(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0 < value < 10:
            raise ValueError("must be in (0, 10)")
        return value

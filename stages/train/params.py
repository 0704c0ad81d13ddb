"""Parameters of `deep-lulc train`."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from deep_lulc.shared.models import architectures
from deep_lulc.shared.models.architectures import DEFAULT_ARCHITECTURE, Architecture
from deep_lulc.shared.stage.contract import StageInputs, StageParams, unset_when_blank

Encoder = Literal["resnet18", "resnet34", "resnet50"]
InputMode = Literal["stack", "single-date"]
LossName = Literal["ce", "weighted-ce", "focal", "dice-ce"]
DEFAULT_ENCODER: Encoder = "resnet34"
DEFAULT_EPOCHS = 20


class TrainInputs(StageInputs):
    chips: str = Field(description="The chips stage's catalog.json href.")


class TrainParams(StageParams):
    """Train a model on the chips (temporal U-Net, fastai Dynamic U-Net or LightGBM), validate it as maps, and
    publish it as a STAC MLM model item.
    """

    architecture: Architecture = Field(DEFAULT_ARCHITECTURE, description=architectures.help_text())
    encoder: Encoder | None = Field(
        None, description=f"ResNet encoder of the unet architecture (default {DEFAULT_ENCODER}; an empty value: none)."
    )
    input_mode: InputMode = Field(
        "stack", description="stack: all features x dates as channels; single-date: one date per sample (unet)."
    )
    epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description=f"Training epochs (one-cycle schedule over all of them); default {DEFAULT_EPOCHS}, more for "
        "temporal-pixel on a small training set, until the schedule takes 600 optimisation steps.",
    )
    batch_size: int = Field(8, ge=1, le=4096, description="Chips per optimisation step.")
    lr: float | Literal["auto"] | None = Field(
        None, description="Peak learning rate, 'auto' for fastai's LR finder, default: the architecture's tuned rate."
    )
    loss: LossName = Field(
        "weighted-ce", description="Loss: cross-entropy, class-weighted cross-entropy, focal, or dice + cross-entropy."
    )
    pretrained: bool | None = Field(
        None,
        description="Start the unet encoder from ImageNet weights (downloaded by torchvision); default: yes "
        "for unet, which alone has an ImageNet encoder.",
    )
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
        if value == "":
            return None
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

    # empty: the architecture's default (an ImageNet encoder means nothing to the other architectures)
    _encoder_blank = unset_when_blank("encoder")

    @model_validator(mode="after")
    def _fits_architecture(self) -> Self:
        """An option the chosen architecture does not take is refused, never silently ignored."""
        given = {
            "encoder": ("--encoder", self.encoder is not None),
            "pretrained": ("--pretrained", self.pretrained is True),
            "weights": ("--weights", self.weights is not None),
            "single-date": ("--input-mode single-date", self.input_mode == "single-date"),
            "lr": ("--lr", self.lr is not None),
            "resume": ("--resume", self.resume is True),
        }
        takes = architectures.spec(self.architecture).options
        refused = [flag for option, (flag, present) in given.items() if present and option not in takes]
        if refused:
            options = {option for option, (flag, present) in given.items() if present}
            fitting = [name for name, entry in architectures.REGISTRY.items() if options <= entry.options]
            raise ValueError(
                f"{', '.join(refused)} do(es) not apply to --architecture {self.architecture}: "
                + (f"use --architecture {' or '.join(fitting)}, or drop the option" if fitting else "drop the option")
            )
        return self

    def epochs_for(self, steps_per_epoch: int) -> int:
        """The given epochs, else the default, raised until the one-cycle schedule has the architecture's
        minimum of optimisation steps: a few hundred labelled pixels are ten steps an epoch, and twenty
        epochs of them leave a per-pixel network half trained."""
        if self.epochs is not None:
            return self.epochs
        minimum = architectures.spec(self.architecture).min_steps
        return max(DEFAULT_EPOCHS, -(-minimum // max(steps_per_epoch, 1)))

    @property
    def encoder_name(self) -> str:
        return self.encoder or DEFAULT_ENCODER

    @property
    def use_pretrained(self) -> bool:
        return self.architecture == "unet" and self.pretrained is not False

    def peak_lr(self) -> float | None:
        """The learning rate to train with; None: find it (LR finder)."""
        if self.lr == "auto":
            return None
        if self.lr is None:
            return architectures.spec(self.architecture).default_lr
        return float(self.lr)

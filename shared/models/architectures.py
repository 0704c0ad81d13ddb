"""The registry of model architectures: everything a stage needs to know about one, declared once.

Adding a model means one module with its builder and one entry here; train, predict and the model item
look everything up in this table (its builder, whether it is a network, its title and MLM framework, its
default learning rate and the train options that apply to it) instead of comparing names. The table is kept
free of torch (builders are "module:function" strings imported on use) so that parsing options stays instant.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

Architecture = Literal["temporal-pixel", "temporal-unet", "unet", "lightgbm"]
DEFAULT_ARCHITECTURE: Architecture = "temporal-pixel"

# Train options that only some architectures take; every other option applies to all of them.
Option = Literal["encoder", "pretrained", "weights", "single-date", "lr", "resume"]


@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    title: str  # mlm:architecture ({encoder} is filled in for the ImageNet U-Net)
    summary: str  # one line for --help
    network: bool  # a torch network stored as safetensors; else a LightGBM text model
    framework: str  # mlm:framework, in MLM's spelling where its enum has one
    options: frozenset[Option]  # the architecture-specific train options it takes
    builder: str | None = None  # "module:function" taking a ModelConfig, for networks
    default_lr: float | None = None  # peak one-cycle rate, measured (benchmarks/quality.py, benchmarks/real.py)
    channels_first: bool = False  # reshapes its input into (dates, pixels) images: never feed it channels-last
    samples: Literal["chips", "pixels"] = "chips"  # what one training sample is
    min_steps: int = 0  # default epochs grow on small training sets until the schedule has this many steps
    keep: Literal["best", "last"] = "best"  # the weights published: best validation epoch, or the schedule's end
    sampling: str = "class-balanced chips"  # what one training sample is, for the model item's hyperparameters
    augmentation: str = "flips and 90-degree rotations"

    def build(self, config: Any, **kwargs: Any) -> Any:
        if self.builder is None:
            raise TypeError(f"{self.name} has no network to build")
        module, function = self.builder.split(":")
        build: Callable[..., Any] = getattr(importlib.import_module(module), function)
        return build(config, **kwargs)


_NETWORK_OPTIONS: frozenset[Option] = frozenset({"lr", "resume"})
REGISTRY: dict[str, ArchitectureSpec] = {
    spec.name: spec
    for spec in (
        ArchitectureSpec(
            name="temporal-pixel",
            title="Temporal attention encoder per pixel + 3x3 probability smoothing",
            summary="per-pixel temporal attention encoder trained on every labelled pixel of the chips, class "
            "probabilities averaged over 3 x 3 px (the default)",
            network=True,
            framework="PyTorch",
            options=_NETWORK_OPTIONS,
            builder="deep_lulc.shared.models.temporal_unet:build_temporal_pixel",
            default_lr=3e-3,
            channels_first=True,
            samples="pixels",
            keep="last",
            sampling="labelled pixels of class-balanced chips",
            min_steps=600,
            augmentation="none",
        ),
        ArchitectureSpec(
            name="temporal-unet",
            title="Temporal attention encoder + compact U-Net",
            summary="per-pixel temporal attention encoder + compact U-Net",
            network=True,
            framework="PyTorch",
            options=_NETWORK_OPTIONS,
            builder="deep_lulc.shared.models.temporal_unet:build_temporal_unet",
            default_lr=3e-3,
            channels_first=True,
        ),
        ArchitectureSpec(
            name="unet",
            title="DynamicUnet ({encoder} encoder, fastai)",
            summary="fastai Dynamic U-Net on a ResNet over the stacked dates (the original)",
            network=True,
            framework="PyTorch",
            options=_NETWORK_OPTIONS | frozenset[Option]({"encoder", "pretrained", "weights", "single-date"}),
            builder="deep_lulc.shared.models.networks:build_dynamic_unet",
            default_lr=2e-3,
        ),
        ArchitectureSpec(
            name="lightgbm",
            title="LightGBM gradient-boosted trees, per pixel",
            summary="LightGBM pixel classifier",
            network=False,
            framework="lightgbm",
            options=frozenset(),
            sampling="labelled pixels",
            augmentation="none",
        ),
    )
}
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
NETWORK_ARCHITECTURES: tuple[str, ...] = tuple(name for name, spec in REGISTRY.items() if spec.network)
assert set(REGISTRY) == set(ARCHITECTURES), "every Architecture name needs one registry entry"


def spec(name: str) -> ArchitectureSpec:
    return REGISTRY[name]


def help_text() -> str:
    return "; ".join(f"{name}: {entry.summary}" for name, entry in REGISTRY.items()) + "."

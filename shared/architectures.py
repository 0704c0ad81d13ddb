"""The model architectures a stage can name, kept free of torch so that parsing options stays instant."""

from __future__ import annotations

from typing import Literal, get_args

Architecture = Literal["temporal-unet", "unet", "lightgbm"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
NETWORK_ARCHITECTURES = ("temporal-unet", "unet")

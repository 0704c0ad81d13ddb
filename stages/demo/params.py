"""Parameters of `deep-lulc demo`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.contract import StageParams


class DemoParams(StageParams):
    seed: int = Field(0, ge=0)
    size: int = Field(512, ge=128, le=4096)
    dates: int = Field(24, ge=4, le=73)
    epochs: int = Field(20, ge=1, le=200, description="Training epochs of the deep model.")

"""Parameters of `deep-lulc synth`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deep_lulc.shared.stage.contract import StageParams

AssetStyle = Literal["earth-search", "planetary-computer"]


class SynthParams(StageParams):
    """Write a synthetic Sentinel-2 L2A STAC catalog with labels and AOIs (the offline default)."""

    seed: int = Field(0, ge=0, description="Random seed; the same seed gives byte-identical catalogs.")
    size: int = Field(512, ge=128, le=4096, description="Scene width and height in 10 m pixels.")
    dates: int = Field(24, ge=4, le=73, description="Acquisitions per year (on the 5-day revisit).")
    year: int = Field(2023, ge=2022, le=2100, description="First period; a second period covers year+1.")
    asset_style: AssetStyle = Field("earth-search", description="Asset keys and metadata like this provider.")

    @field_validator("size")
    @classmethod
    def _multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError("must be a multiple of 16 (10 m and 20 m grids must align, with room for COG tiles)")
        return value

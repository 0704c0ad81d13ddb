"""Parameters of `deep-lulc features`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deep_lulc.shared.sources.sentinel2 import DEFAULT_VALID_SCL, SCL_CLASSES
from deep_lulc.shared.stage.contract import StageInputs, StageParams


class FeaturesInputs(StageInputs):
    cube: str = Field(description="The cube stage's catalog.json (or cube item) href.")


FrameFilter = Literal["pixel", "aoi"]


class FeaturesParams(StageParams):
    """Mask clouds per pixel and interpolate bands + NDVI/NDWI/NDBI onto a regular date grid."""

    frame_filter: FrameFilter = Field(
        "pixel",
        description="pixel: each pixel uses every observation where it is valid, so features do not depend on "
        "the AOI's extent; aoi: the original rule, keep only frames whose valid fraction over the whole AOI "
        "reaches --min-valid.",
    )
    min_valid: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description="With --frame-filter aoi: keep frames with at least this valid fraction over the AOI. "
        "Ignored with --frame-filter pixel.",
    )
    step_days: int = Field(16, ge=1, le=366, description="Spacing of the regular output dates.")
    valid_scl: tuple[int, ...] = Field(DEFAULT_VALID_SCL, min_length=1, description="SCL classes that count as valid.")
    chunk_size: int = Field(256, ge=32, le=4096, description="Spatial block processed at a time, in pixels.")
    dask_address: str | None = Field(None, description="Scheduler of an existing dask cluster; default in-process.")

    @field_validator("valid_scl")
    @classmethod
    def _known_classes(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        unknown = sorted(set(value) - set(SCL_CLASSES))
        if unknown:
            raise ValueError(f"unknown SCL classes {unknown}; SCL codes are 0..11")
        return tuple(sorted(set(value)))

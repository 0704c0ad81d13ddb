"""Parameters of `deep-lulc change`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.contract import StageParams


class ChangeParams(StageParams):
    classes: str | None = Field(
        None, description="Class scheme file (YAML/JSON) both maps must use; default: the scheme their assets list."
    )
    block_size: int = Field(512, ge=16, le=8192, description="Side of the square window processed at a time, in px.")

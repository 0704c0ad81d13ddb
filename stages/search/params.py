"""Parameters shared by the stages that select scenes (`search`, `cube`)."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from deep_lulc.shared.contract import StageParams


class SceneSelection(StageParams):
    collection: str = Field("sentinel-2-l2a", min_length=1)
    start: dt.date
    end: dt.date
    max_cloud: float | None = Field(None, ge=0, le=100, description="Maximum eo:cloud_cover in percent.")
    page_size: int = Field(100, ge=1, le=10_000, description="Items per STAC API page.")

    @model_validator(mode="after")
    def _ordered(self) -> SceneSelection:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class SearchParams(SceneSelection):
    """`deep-lulc search`."""

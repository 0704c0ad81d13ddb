"""Choosing scenes: the parameters, inputs and query that `search` and `cube` share, so both
stages describe a selection the same way without importing each other."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, model_validator

from deep_lulc.shared.sources.aoi import load_aoi
from deep_lulc.shared.sources.item_search import SceneQuery
from deep_lulc.shared.sources.signing import Signing, option_help
from deep_lulc.shared.stage.contract import StageInputs, StageParams


class SceneInputs(StageInputs):
    stac: str = Field(
        description="STAC API root URL, href of a static catalog/collection, or an ItemCollection file "
        "(search's --out)."
    )
    aoi: str = Field(description="Vector file (GeoJSON, GeoPackage, Shapefile...) or lon/lat bbox.")


class SceneSelection(StageParams):
    collection: str = Field("sentinel-2-l2a", min_length=1, description="Collection id.")
    start: dt.date = Field(description="First day, YYYY-MM-DD.")
    end: dt.date = Field(description="Last day, YYYY-MM-DD (inclusive).")
    max_cloud: float | None = Field(None, ge=0, le=100, description="Keep items with eo:cloud_cover <= PCT (percent).")
    page_size: int = Field(100, ge=1, le=10_000, description="Items per STAC API page.")
    sign: Signing = Field("none", description=option_help())

    @model_validator(mode="after")
    def _ordered(self) -> SceneSelection:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def query_from(inputs: SceneInputs, params: SceneSelection) -> SceneQuery:
    return SceneQuery(
        source=inputs.stac,
        collection=params.collection,
        aoi=load_aoi(inputs.aoi),
        start=params.start,
        end=params.end,
        max_cloud=params.max_cloud,
        page_size=params.page_size,
    )

"""Choosing scenes: the parameters, CLI options and query that `search` and `cube` share, so both
stages describe a selection the same way without importing each other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import typer
from pydantic import Field, model_validator

from deep_lulc.shared.aoi import load_aoi
from deep_lulc.shared.contract import StageParams
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.item_search import SceneQuery

STAC_OPTION = typer.Option(..., "--stac", help="STAC API root URL, or href of a static catalog/collection.")
AOI_OPTION = typer.Option(..., "--aoi", help="Vector file (GeoJSON, GeoPackage, Shapefile...) or lon/lat bbox.")
COLLECTION_OPTION = typer.Option("sentinel-2-l2a", "--collection", help="Collection id.")
START_OPTION = typer.Option(..., "--start", help="First day, YYYY-MM-DD.")
END_OPTION = typer.Option(..., "--end", help="Last day, YYYY-MM-DD (inclusive).")
MAX_CLOUD_OPTION = typer.Option(None, "--max-cloud", help="Keep items with eo:cloud_cover <= PCT.")
PAGE_SIZE_OPTION = typer.Option(100, "--page-size", help="Items per STAC API page.")


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


def query_from(inputs: Mapping[str, str], params: SceneSelection) -> SceneQuery:
    missing = [name for name in ("stac", "aoi") if name not in inputs]
    if missing:
        raise BadInputError(f"missing inputs {missing}", fix="pass --stac SRC and --aoi AOI")
    return SceneQuery(
        source=inputs["stac"],
        collection=params.collection,
        aoi=load_aoi(inputs["aoi"]),
        start=params.start,
        end=params.end,
        max_cloud=params.max_cloud,
        page_size=params.page_size,
    )

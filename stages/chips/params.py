"""Parameters of `deep-lulc chips`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams, unset_when_blank

Sampling = Literal["random", "grid", "balanced"]


class ChipsInputs(StageInputs):
    features: str = Field(description="The features stage's catalog.json href.")
    labels: str = Field(description="Label polygons: GeoPackage, Shapefile, GeoJSON, FlatGeobuf.")


class ChipsParams(StageParams):
    """Rasterise and erode labels, sample chip windows, split them by blocks, write a STAC chip collection."""

    class_column: str = Field("lulc", min_length=1, description="Attribute holding the class codes.")
    classes: str | None = Field(None, description="Class scheme file (YAML/JSON); default: the Slovenia scheme.")
    class_map: str | None = Field(None, description="File mapping source codes or names to the scheme.")
    # the layout's three numbers also take "auto" (chosen for the AOI, as when left out): a run config or Argo
    # parameter can say so, where every parameter is passed
    size: Annotated[int, Field(ge=16, le=2048)] | Literal["auto"] | None = Field(
        None, description="Chip width and height in pixels; auto (default): 64, up to 256 on large AOIs."
    )
    count: Annotated[int, Field(ge=1, le=1_000_000)] | Literal["auto"] | None = Field(
        None, description="Windows to draw; auto (default): growing with the labelled area (48-1024)."
    )
    sampling: Sampling = Field(
        "random", description="random windows, a regular grid, or balanced (rarest classes first)."
    )
    min_labelled: float = Field(0.5, ge=0.0, le=1.0, description="Skip windows with fewer labelled pixels.")
    erosion_radius: int = Field(1, ge=0, le=20, description="Disk radius eroding each class (0: none).")
    val_fraction: float = Field(
        0.2, ge=0.0, le=0.9, description="Share of the labelled pixels put in validation blocks."
    )
    block_size: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] | None = Field(
        None, description="Split blocks are block-size x block-size chip cells; auto (default): 2-4 by AOI."
    )
    split_file: str | None = Field(None, description="JSON forcing the block assignment (as split.json writes).")
    seed: int = Field(0, ge=0, description="Random seed.")

    _files_blank = unset_when_blank("classes", "class_map")
    _layout_auto = unset_when_blank("size", "count", "block_size", auto=True)

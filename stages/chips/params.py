"""Parameters of `deep-lulc chips`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from deep_lulc.shared.stage.contract import StageInputs, StageParams

Sampling = Literal["random", "grid", "balanced"]


class ChipsInputs(StageInputs):
    features: str = Field(description="The features stage's catalog.json href.")
    labels: str = Field(description="Label polygons: GeoPackage, Shapefile, GeoJSON, FlatGeobuf.")


class ChipsParams(StageParams):
    """Rasterise and erode labels, sample chip windows, split them by blocks, write a STAC chip collection."""

    class_column: str = Field("lulc", min_length=1, description="Attribute holding the class codes.")
    classes: str | None = Field(None, description="Class scheme file (YAML/JSON); default: the Slovenia scheme.")
    class_map: str | None = Field(None, description="File mapping source codes or names to the scheme.")
    size: int | None = Field(
        None, ge=16, le=2048, description="Chip width and height in pixels; default: 64, up to 256 on large AOIs."
    )
    count: int | None = Field(
        None, ge=1, le=1_000_000, description="Windows to draw; default: growing with the labelled area (48-1024)."
    )
    sampling: Sampling = Field(
        "random", description="random windows, a regular grid, or balanced (rarest classes first)."
    )
    min_labelled: float = Field(0.5, ge=0.0, le=1.0, description="Skip windows with fewer labelled pixels.")
    erosion_radius: int = Field(1, ge=0, le=20, description="Disk radius eroding each class (0: none).")
    val_fraction: float = Field(
        0.2, ge=0.0, le=0.9, description="Share of the labelled pixels put in validation blocks."
    )
    block_size: int | None = Field(
        None, ge=1, le=256, description="Split blocks are block-size x block-size chip cells; default: 2-4 by AOI."
    )
    split_file: str | None = Field(None, description="JSON forcing the block assignment (as split.json writes).")
    seed: int = Field(0, ge=0, description="Random seed.")

    @field_validator("classes", "class_map", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty file name is not given: Argo passes every parameter, empty where the default holds."""
        return None if value == "" else value

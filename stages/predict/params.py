"""Parameters of `deep-lulc predict` and `deep-lulc plan-tiles`."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from deep_lulc.shared.geo.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW
from deep_lulc.shared.products.tiles import TileSelection
from deep_lulc.shared.stage.contract import StageInputs, StageParams

FEATURES_HELP = "The features stage's catalog.json href."


class PredictInputs(StageInputs):
    model: str = Field(description="The train stage's catalog.json (model item) href.")
    features: str = Field(description=FEATURES_HELP)


class PlanTilesInputs(StageInputs):
    aoi: str | None = Field(
        None,
        description="Plan over the grid `cube` builds for this AOI (vector file or lon/lat bbox): a fan-out "
        "from cube onward.",
    )
    features: str | None = Field(None, description=f"{FEATURES_HELP} Plan over its grid: a fan-out of predict alone.")


class PredictParams(TileSelection):
    """Map LULC classes over the features grid (or one tile of it) with a trained model; writes a COG."""

    tile_size: int | None = Field(
        None,
        ge=32,
        le=8192,
        description=f"Inference window edge in pixels (default: the tiles file's, else the window the model was "
        f"validated with, else {DEFAULT_WINDOW}).",
    )
    overlap: int | None = Field(
        None,
        ge=0,
        le=4096,
        description=f"Overlap of neighbouring windows (default: the tiles file's, else the model's validated overlap, "
        f"else {DEFAULT_OVERLAP}).",
    )
    batch_size: int | None = Field(
        None, ge=1, le=1024, description="Windows per forward pass (default 1 on CPU, 8 on CUDA)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when present, else CPU.")
    probabilities: bool = Field(False, description="Also write per-class probabilities (uint8 percent) as a COG.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.tile_size is not None and self.tile_size % 32:
            raise ValueError(f"--tile-size {self.tile_size} must be a multiple of 32 (the U-Net halves it five times)")
        if self.tile_size is not None and self.overlap is not None and 2 * self.overlap >= self.tile_size:
            raise ValueError(f"--overlap {self.overlap} must be less than half of --tile-size {self.tile_size}")
        return self

    def window(self, planned: tuple[int, int] | None = None) -> tuple[int, int]:
        """(window, overlap): the explicit values, else the planned ones (tiles file, or the window the model
        was validated with), else the defaults."""
        size = self.tile_size or (planned[0] if planned else DEFAULT_WINDOW)
        overlap = self.overlap if self.overlap is not None else (planned[1] if planned else DEFAULT_OVERLAP)
        return size, min(overlap, (size - 1) // 2)


class PlanTilesParams(StageParams):
    """Split an AOI's grid (or a features grid) into tiles, one pod each (a JSON array for Argo's withParam)."""

    tile_size: int = Field(2048, ge=16, le=65536, description="Edge of each tile's own (core) region in pixels.")
    window_size: int = Field(
        DEFAULT_WINDOW, ge=32, le=8192, multiple_of=32, description="predict's --tile-size (inference window)."
    )
    overlap: int = Field(DEFAULT_OVERLAP, ge=0, le=4096, description="predict's --overlap.")
    resolution: float = Field(10.0, gt=0, le=1000, description="With --aoi: cube's --resolution, in metres.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if 2 * self.overlap >= self.window_size:
            raise ValueError(f"--overlap {self.overlap} must be less than half of --window-size {self.window_size}")
        return self

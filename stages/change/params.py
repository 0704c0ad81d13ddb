"""Parameters of `deep-lulc change`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams


class ChangeInputs(StageInputs):
    before: str = Field(description="Catalog or item of the earlier map (deep-lulc predict).")
    after: str = Field(description="Catalog or item of the later map (deep-lulc predict).")


class ChangeParams(StageParams):
    """Transition map (from-class -> to-class per pixel), area matrix in hectares and net change per class."""

    classes: str | None = Field(
        None, description="Class scheme file (YAML/JSON) both maps must use; default: the scheme their assets list."
    )
    block_size: int = Field(512, ge=16, le=8192, description="Side of the square window processed at a time, in px.")
    method: Literal["joint", "raw"] = Field(
        "joint",
        description="joint: a pixel changes only where both periods' class probabilities are confidently "
        "different, then slivers and regions under the mapping unit are dropped; raw: every pixel whose two "
        "classes differ.",
    )
    same_class_below: float = Field(
        0.5,
        gt=0,
        le=1,
        description="joint: a pixel can change only where the probability that both periods hold the same "
        "class, sum_c p_before(c) * p_after(c), is below this (0.5: more likely changed than not), and the two "
        "maps name different classes.",
    )
    min_confidence: float = Field(
        0.3, ge=0, le=1, description="joint: and only where each period's own class has at least this probability."
    )
    opening_radius: int = Field(
        1,
        ge=0,
        le=5,
        description="joint: changed strips narrower than 2 * radius + 1 px are removed (morphological opening "
        "with a square); 1 removes the 1-2 px slivers along parcel borders; 0: none.",
    )
    min_mapping_unit: float = Field(
        0.5,
        ge=0,
        le=25,
        description="joint: changed regions (8-connected) smaller than this many hectares are dropped; 0: none. "
        "Each window is read with a halo as wide as the unit in pixels.",
    )

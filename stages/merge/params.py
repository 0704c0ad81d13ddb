"""Parameters of `deep-lulc merge`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.stage.contract import StageParams


class MergeParams(StageParams):
    """Mosaic tile predictions into one COG + item, identical to a single-process prediction."""

    allow_missing: bool = Field(False, description="Mosaic even when some tiles of the plan are absent (left nodata).")

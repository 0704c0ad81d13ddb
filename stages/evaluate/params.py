"""Parameters of `deep-lulc evaluate`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams, unset_when_blank


class EvaluateInputs(StageInputs):
    prediction: str = Field(
        description="Catalog or item of a map (deep-lulc predict) or a change map (deep-lulc change)."
    )
    labels: str = Field(
        description="Reference polygons (any OGR format and CRS); for a change map, the later period's."
    )
    before_labels: str | None = Field(None, description="Reference polygons of the earlier period (change maps only).")


class EvaluateParams(StageParams):
    """Per-class IoU/precision/recall/F1 of a map against labels, or change-detection accuracy of a change map."""

    class_column: str = Field("lulc", min_length=1, description="Attribute of the labels holding the class codes.")
    class_map: str | None = Field(None, description="File mapping source codes or names to the map's classes.")
    erosion_radius: int = Field(0, ge=0, le=20, description="Disk radius eroding each label class (0: none).")
    block_size: int = Field(512, ge=16, le=8192, description="Side of the square window processed at a time, in px.")

    _files_blank = unset_when_blank("class_map")

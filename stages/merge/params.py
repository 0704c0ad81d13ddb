"""Parameters of `deep-lulc merge`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Self

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams


class MergeInputs(StageInputs):
    """The tile predictions of one plan, given as positional arguments."""

    tiles: tuple[str, ...] = ()

    def hrefs(self) -> dict[str, str]:
        """One name per tile (`tile_0000`, ...), as params.json and rerun records keep inputs."""
        return {f"tile_{index:04d}": href for index, href in enumerate(self.tiles)}

    @classmethod
    def of(cls, given: StageInputs | Mapping[str, str]) -> Self:
        """A mapping's values are the tiles, whatever their keys (the order is kept)."""
        if isinstance(given, cls):
            return given
        hrefs = given.hrefs() if isinstance(given, StageInputs) else given
        return cls(tiles=tuple(hrefs.values()))


class MergeParams(StageParams):
    """Mosaic tile predictions into one COG + item, identical to a single-process prediction."""

    allow_missing: bool = Field(False, description="Mosaic even when some tiles of the plan are absent (left nodata).")

"""Parameters of `deep-lulc change`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self

from pydantic import Field, model_validator

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.stage.contract import StageInputs, StageParams, validate_params

Method = Literal["joint", "raw", "consistent"]
FORMS_FIX = "pass --before A --after B, or two or more maps in time order as arguments (A B C ...)"
SERIES_KEY = "map_"  # params.json and rerun records name a series' maps map_0000, map_0001, ...


class ChangeInputs(StageInputs):
    """Two maps as --before/--after, or a series of two or more maps, in time order, as arguments."""

    before: str | None = Field(None, description="Catalog or item of the earlier map (deep-lulc predict).")
    after: str | None = Field(None, description="Catalog or item of the later map (deep-lulc predict).")
    maps: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        given = [f"--{name}" for name in ("before", "after") if getattr(self, name) is not None]
        if self.maps and given:
            both = f"{' and '.join(given)} given together with {len(self.maps)} map arguments"
            raise BadInputError(both, fix=FORMS_FIX)
        if len(self.maps) == 1:
            raise BadInputError(f"one map given ({storage.redact(self.maps[0])}): a change needs two", fix=FORMS_FIX)
        if not self.maps and len(given) == 1:
            missing = "--after" if given == ["--before"] else "--before"
            raise BadInputError(f"{given[0]} was given without {missing}", fix=FORMS_FIX)
        if not self.maps and not given:
            raise BadInputError("no maps given", fix=FORMS_FIX)
        return self

    @property
    def paired(self) -> bool:
        """Given as --before and --after (the two-map form, whose output and result keep their layout)."""
        return not self.maps

    def series(self) -> tuple[str, ...]:
        """Every map's href, earliest first."""
        if self.before is not None and self.after is not None:
            return (self.before, self.after)
        return self.maps

    def hrefs(self) -> dict[str, str]:
        """`before`/`after`, or one name per map of a series (`map_0000`, ...), as params.json and rerun
        records keep inputs."""
        if self.before is not None and self.after is not None:
            return {"before": self.before, "after": self.after}
        return {f"{SERIES_KEY}{index:04d}": href for index, href in enumerate(self.maps)}

    @classmethod
    def of(cls, given: StageInputs | Mapping[str, str]) -> Self:
        """A mapping's `map_NNNN` values are the series (in the mapping's order); other keys are options."""
        if isinstance(given, cls):
            return given
        hrefs = given.hrefs() if isinstance(given, StageInputs) else dict(given)
        maps = tuple(href for name, href in hrefs.items() if name.startswith(SERIES_KEY))
        raw: dict[str, object] = {name: href for name, href in hrefs.items() if not name.startswith(SERIES_KEY)}
        if maps:
            raw["maps"] = maps
        return validate_params(cls, raw)


class ChangeParams(StageParams):
    """Transition map (from-class -> to-class per pixel), area matrix in hectares and net change per class,
    for two maps or for each consecutive pair of a series of yearly maps (decided consistently over the whole
    series by default)."""

    classes: str | None = Field(
        None, description="Class scheme file (YAML/JSON) both maps must use; default: the scheme their assets list."
    )
    block_size: int = Field(512, ge=16, le=8192, description="Side of the square window processed at a time, in px.")
    method: Method | None = Field(
        None,
        description="joint: a pixel changes only where both periods' class probabilities are confidently "
        "different, then slivers and regions under the mapping unit are dropped; raw: every pixel whose two "
        "classes differ; consistent: every period's probabilities decide together (a hidden Markov model "
        "per pixel that makes change rare, decoded with Viterbi), so a class that flickers for a year is no "
        "change, then slivers and regions under the mapping unit are dropped. A series compares each "
        "consecutive pair. Default: joint for two maps, consistent for three or more.",
    )
    change_rate: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="consistent: the prior probability that a pixel changes class between two periods, spread "
        "evenly over the other classes. It sets the evidence a change needs: odds of (1 - rate) * (classes - 1) "
        "/ rate to one against each particular change, squared against a one-period flicker. Lower keeps less "
        "change; (classes - 1) / classes weighs every period alone, as --method raw does.",
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
    opening_radius: int | None = Field(
        None,
        ge=0,
        le=5,
        description="joint, consistent: changed strips narrower than 2 * radius + 1 px are removed "
        "(morphological opening with a square); 1 removes the 1-2 px slivers along parcel borders; 0: none. "
        "Default: 1 for joint; 0 for consistent, whose decoding already drops the flicker slivers are made of "
        "and whose detections inside a changed parcel are porous, so an opening would erase real change "
        "(benchmarks/change_consistency.py).",
    )
    min_mapping_unit: float = Field(
        0.5,
        ge=0,
        le=25,
        description="joint, consistent: changed regions (8-connected) smaller than this many hectares are "
        "dropped; 0: none. Each window is read with a halo as wide as the unit in pixels.",
    )

    def opening_for(self, method: Method) -> int:
        """--opening-radius as given, else 0 for consistent and 1 for joint."""
        if self.opening_radius is not None:
            return self.opening_radius
        return 0 if method == "consistent" else 1

    def method_for(self, maps: int) -> Method:
        """--method as given, else joint for two maps and consistent for a longer series."""
        if self.method is not None:
            return self.method
        return "joint" if maps == 2 else "consistent"

"""The LULC class scheme: the seed's Slovenia legend by default, replaceable by a YAML/JSON file.

A scheme file looks like::

    nodata: 0
    classes:
      - {value: 0, name: NoData, description: No label, color: "#ffffff"}
      - {value: 1, name: CultivatedLand, description: Arable land and crops, color: "#ffff00"}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deep_lulc.shared.errors import BadInputError

# classification v2.0.0 restricts names to this pattern; mlm validates against v1.1.0 which wants descriptions.
_NAME_PATTERN = re.compile(r"^[0-9A-Za-z_-]+$")
_COLOR_PATTERN = re.compile(r"^#?[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class LulcClass:
    value: int
    name: str
    description: str
    color: str  # "#rrggbb"

    @property
    def rgb(self) -> tuple[int, int, int]:
        hex_digits = self.color.lstrip("#")
        return int(hex_digits[0:2], 16), int(hex_digits[2:4], 16), int(hex_digits[4:6], 16)

    def to_classification(self) -> dict[str, Any]:
        """The classification-extension class object (`value`, `name`, `description`, `color_hint`)."""
        return {
            "value": self.value,
            "name": self.name,
            "description": self.description,
            "color_hint": self.color.lstrip("#").upper(),
        }


@dataclass(frozen=True)
class ClassScheme:
    classes: tuple[LulcClass, ...]
    nodata: int = 0

    def __post_init__(self) -> None:
        if not self.classes:
            raise BadInputError("the class scheme lists no classes", fix="list a NoData class and the classes to map")
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values):
            raise BadInputError("class scheme has duplicate values", fix="give every class a unique value")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise BadInputError("class scheme has duplicate names", fix="give every class a unique name")
        for cls in self.classes:
            if not 0 <= cls.value <= 254:
                raise BadInputError(f"class value {cls.value} ({cls.name}) is outside 0..254", fix="use uint8 codes")
            if not _NAME_PATTERN.match(cls.name):
                raise BadInputError(
                    f"class name {cls.name!r} has characters STAC classification forbids",
                    fix="use letters, digits, '-' and '_' only (put prose in 'description')",
                )
            if not _COLOR_PATTERN.match(cls.color):
                raise BadInputError(f"class {cls.name} has colour {cls.color!r}", fix="use '#rrggbb'")
        if self.nodata not in values:
            raise BadInputError(f"nodata value {self.nodata} is not a class of the scheme", fix="add a NoData class")

    @property
    def values(self) -> list[int]:
        return [c.value for c in self.classes]

    @property
    def labelled(self) -> tuple[LulcClass, ...]:
        """The classes a model predicts: every class except nodata."""
        return tuple(c for c in self.classes if c.value != self.nodata)

    def by_name(self, name: str) -> LulcClass:
        for cls in self.classes:
            if cls.name.lower() == name.lower():
                return cls
        raise BadInputError(f"unknown class name {name!r}", fix=f"use one of {', '.join(c.name for c in self.classes)}")

    def by_value(self, value: int) -> LulcClass:
        for cls in self.classes:
            if cls.value == value:
                return cls
        raise BadInputError(f"unknown class value {value}", fix=f"use one of {self.values} or pass --class-map")

    def to_classification(self) -> list[dict[str, Any]]:
        """classification:classes of the scheme; the nodata class says so (`nodata: true`, classification
        v2.0.0), so STAC clients mask it instead of drawing it as a class."""
        return [c.to_classification() | ({"nodata": True} if c.value == self.nodata else {}) for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodata": self.nodata,
            "classes": [
                {"value": c.value, "name": c.name, "description": c.description, "color": c.color} for c in self.classes
            ],
        }


SLOVENIA = ClassScheme(
    classes=(
        LulcClass(0, "NoData", "No label or no valid observation", "#ffffff"),
        LulcClass(1, "CultivatedLand", "Arable land: annual crops, sown and harvested", "#ffff00"),
        LulcClass(2, "Forest", "Deciduous and evergreen forest", "#054907"),
        LulcClass(3, "Grassland", "Meadows and pastures, mown or grazed", "#ffa500"),
        LulcClass(4, "Shrubland", "Shrubs and sparse woody vegetation", "#806000"),
        LulcClass(5, "Water", "Rivers, lakes and reservoirs", "#069af3"),
        LulcClass(6, "Wetlands", "Marshes and wet meadows", "#95d0fc"),
        LulcClass(7, "Tundra", "Tundra", "#967bb6"),
        LulcClass(8, "ArtificialSurface", "Buildings, roads and other sealed surfaces", "#dc143c"),
        LulcClass(9, "Bareland", "Bare soil, rock, gravel and quarries", "#a6a6a6"),
        LulcClass(10, "SnowAndIce", "Permanent snow and ice", "#000000"),
    ),
    nodata=0,
)


def load_class_scheme(path: str | Path | None) -> ClassScheme:
    """The scheme in a YAML/JSON file, or the Slovenia default when `path` is None."""
    if path is None:
        return SLOVENIA
    file = Path(path)
    if not file.is_file():
        raise BadInputError(
            f"class scheme file not found: {file}", fix="pass an existing YAML or JSON file to --classes"
        )
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise BadInputError(f"class scheme {file} is not valid YAML/JSON: {exc}", fix="fix the file's syntax") from exc
    return class_scheme_from_dict(document, source=str(file))


def class_scheme_from_dict(document: Any, *, source: str = "class scheme") -> ClassScheme:
    if not isinstance(document, dict) or not isinstance(document.get("classes"), list):
        raise BadInputError(f"{source} has no 'classes' list", fix="see the class scheme format in the README")
    classes = []
    for index, entry in enumerate(document["classes"]):
        if not isinstance(entry, dict) or "value" not in entry or "name" not in entry:
            raise BadInputError(
                f"{source}: class #{index} lacks 'value' or 'name'", fix="give each class value and name"
            )
        classes.append(
            LulcClass(
                value=int(entry["value"]),
                name=str(entry["name"]),
                description=str(entry.get("description") or entry["name"]),
                color=str(entry.get("color", "#808080")),
            )
        )
    return ClassScheme(classes=tuple(classes), nodata=int(document.get("nodata", 0)))


def dump_class_scheme(scheme: ClassScheme) -> str:
    return json.dumps(scheme.to_dict(), indent=2)

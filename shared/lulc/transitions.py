"""The transition code of a change map: one integer per (from-class, to-class) pair, 0 where either map has no data.

`code = 1 + from_index * n + to_index` over the scheme's n labelled classes in scheme order. It is
dense (a lookup table decodes it), fits uint8 up to 15 classes, and is written into the item so any reader
can decode a change map without this code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.lulc.classes import ClassScheme, LulcClass

CHANGE_ASSET = "change"  # the transition COG of a change item
TRANSITION_FORMULA = "1 + from_index * n + to_index"
STABLE_COLOUR = (211, 211, 211)  # light grey: unchanged pixels recede, changes stand out in their new class colour
NODATA_CODE = 0
# A change drawn as the class it became (thumbnails, previews, the report) marks unchanged pixels with this
# value: above every class value, so it cannot collide with one.
UNCHANGED_VALUE = 255


def class_indices(values: np.ndarray, scheme: ClassScheme, *, what: str) -> np.ndarray:
    """Position of each pixel's class among the scheme's labelled classes; -1 for nodata.

    A code the scheme does not list means the map and its metadata disagree, which no later step can
    repair, so it is an error naming the codes.
    """
    lookup = np.full(256, -2, dtype=np.int64)
    lookup[scheme.nodata] = -1
    for index, cls in enumerate(scheme.labelled):
        lookup[cls.value] = index
    codes = np.asarray(values).astype(np.int64, copy=False)
    inside = (codes >= 0) & (codes <= 255)
    indices = np.where(inside, lookup[np.clip(codes, 0, 255)], -2)
    if (indices == -2).any():
        unknown = sorted({int(v) for v in np.unique(codes[indices == -2])})
        raise BadInputError(
            f"{what} holds codes {unknown[:20]} that its classification:classes do not list",
            fix="pass a map written by `deep-lulc predict` (or fix its class list)",
        )
    return indices


@dataclass(frozen=True)
class TransitionCoding:
    """Encode and decode (from, to) pairs of one class scheme."""

    scheme: ClassScheme

    @property
    def classes(self) -> tuple[LulcClass, ...]:
        return self.scheme.labelled

    @property
    def n(self) -> int:
        return len(self.classes)

    @property
    def codes(self) -> int:
        """How many codes exist, nodata included."""
        return 1 + self.n * self.n

    @property
    def dtype(self) -> str:
        return "uint8" if self.codes <= 255 else "uint16"

    def code(self, from_index: int, to_index: int) -> int:
        return 1 + from_index * self.n + to_index

    def encode(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Transition codes of two co-registered class arrays (nodata where either is nodata)."""
        i = class_indices(before, self.scheme, what="the --before map")
        j = class_indices(after, self.scheme, what="the --after map")
        valid = (i >= 0) & (j >= 0)
        return np.where(valid, 1 + i * self.n + j, NODATA_CODE).astype(self.dtype)

    def decode(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(from_index, to_index) of each code, -1 for nodata; codes beyond the scheme are an error."""
        values = np.asarray(codes).astype(np.int64, copy=False)
        if ((values < 0) | (values >= self.codes)).any():
            bad = sorted({int(v) for v in np.unique(values[(values < 0) | (values >= self.codes)])})
            raise BadInputError(
                f"the change map holds codes {bad[:20]} beyond its {self.n}-class transition code",
                fix="pass a change map written by `deep-lulc change`",
            )
        offset = values - 1
        valid = values != NODATA_CODE
        return np.where(valid, offset // self.n, -1), np.where(valid, offset % self.n, -1)

    def name(self, code: int) -> str:
        i, j = divmod(code - 1, self.n)
        return f"{self.classes[i].name}_to_{self.classes[j].name}"

    def as_new_class(self, origin: np.ndarray, to: np.ndarray) -> np.ndarray:
        """Per pixel of (from, to) class indices (-1: no data), the value of the class it became where it
        changed, UNCHANGED_VALUE where it did not, the scheme's nodata where either is missing: the one rule
        every picture of change follows (stable grey, a change in its new class's colour)."""
        values = np.array([c.value for c in self.classes], dtype=np.int64)
        known = (origin >= 0) & (to >= 0)
        drawn = np.where(origin != to, values[np.maximum(to, 0)], UNCHANGED_VALUE)
        return np.where(known, drawn, self.scheme.nodata)

    def new_class_legend(self, unchanged: str) -> list[LulcClass]:
        """The classes of an `as_new_class` picture; `unchanged` describes what stayed the same."""
        stable = "#" + "".join(f"{channel:02x}" for channel in STABLE_COLOUR)
        legend = [LulcClass(UNCHANGED_VALUE, "unchanged", unchanged, stable)]
        return legend + [LulcClass(c.value, f"changed to {c.name}", c.description, c.color) for c in self.classes]

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL colour table: changes in their to-class colour, stable pixels grey, nodata transparent."""
        table = {NODATA_CODE: (255, 255, 255, 0)}
        for i in range(self.n):
            for j, to in enumerate(self.classes):
                table[self.code(i, j)] = (*(STABLE_COLOUR if i == j else to.rgb), 255)
        return table

    def classification(self, counts: np.ndarray) -> list[dict[str, Any]]:
        """classification:classes for the transitions present (`counts[code]` > 0), plus the nodata code."""
        listed: list[dict[str, Any]] = [
            {"value": NODATA_CODE, "name": "NoData", "description": "No data in either map", "nodata": True}
        ]
        stable_hint = "".join(f"{channel:02X}" for channel in STABLE_COLOUR)
        for code in np.flatnonzero(counts[1:]) + 1:
            i, j = divmod(int(code) - 1, self.n)
            source, target = self.classes[i], self.classes[j]
            listed.append(
                {
                    "value": int(code),
                    "name": self.name(int(code)),
                    "description": f"{source.name} -> {target.name}" + (" (stable)" if i == j else ""),
                    "color_hint": stable_hint if i == j else target.color.lstrip("#").upper(),
                    "count": int(counts[code]),
                }
            )
        return listed


def scheme_difference(first: ClassScheme, second: ClassScheme) -> str | None:
    """How two schemes differ in what the codes mean (colours and descriptions aside), or None."""
    problems = []
    if first.nodata != second.nodata:
        problems.append(f"nodata {first.nodata} vs {second.nodata}")
    names_a = {c.value: c.name for c in first.classes}
    names_b = {c.value: c.name for c in second.classes}
    only_a = sorted(set(names_a) - set(names_b))
    only_b = sorted(set(names_b) - set(names_a))
    if only_a:
        problems.append("only the first has " + ", ".join(f"{v} {names_a[v]}" for v in only_a))
    if only_b:
        problems.append("only the second has " + ", ".join(f"{v} {names_b[v]}" for v in only_b))
    renamed = [v for v in sorted(set(names_a) & set(names_b)) if names_a[v] != names_b[v]]
    if renamed:
        problems.append("; ".join(f"code {v} is {names_a[v]} vs {names_b[v]}" for v in renamed))
    return "; ".join(problems) if problems else None

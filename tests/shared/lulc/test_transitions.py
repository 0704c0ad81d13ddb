"""The transition code and the one picture rule of change: stable grey, a change in the colour of its new class."""

from __future__ import annotations

import numpy as np

from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.lulc.transitions import STABLE_COLOUR, UNCHANGED_VALUE, TransitionCoding


def test_a_change_is_drawn_as_the_class_it_became_and_its_legend_matches() -> None:
    coding = TransitionCoding(SLOVENIA)
    forest, water = (next(i for i, c in enumerate(coding.classes) if c.name == name) for name in ("Forest", "Water"))
    origin = np.array([[forest, forest, -1, water]])
    to = np.array([[water, forest, water, -1]])
    drawn = coding.as_new_class(origin, to)
    assert drawn.tolist() == [[5, UNCHANGED_VALUE, SLOVENIA.nodata, SLOVENIA.nodata]]
    codes = np.array([[coding.code(forest, water), coding.code(forest, forest)]])
    assert coding.as_new_class(*coding.decode(codes)).tolist() == [[5, UNCHANGED_VALUE]], "decoded codes draw alike"
    legend = {c.value: c for c in coding.new_class_legend("same class")}
    assert legend[UNCHANGED_VALUE].rgb == STABLE_COLOUR
    assert legend[5].name == "changed to Water"
    assert legend[5].color == next(c.color for c in SLOVENIA.classes if c.value == 5)
    assert UNCHANGED_VALUE not in {c.value for c in SLOVENIA.classes}

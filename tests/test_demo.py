"""`deep-lulc demo` runs the chain that exists so far on the embedded synthetic catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.demo import stage as demo
from deep_lulc.stages.demo.params import DemoParams

from .conftest import validate_tree


def test_demo_chains_synth_cube_features_chips(tmp_path: Path) -> None:
    result = demo.run(inputs={}, output=str(tmp_path), params=DemoParams(size=256, dates=6))
    assert result.catalog == str(tmp_path / "chips" / "catalog.json")
    assert validate_tree(tmp_path / "synth" / "catalog.json") == 1 + 2 + 12 + 2
    assert validate_tree(tmp_path / "cube-train" / "catalog.json") == 2
    assert validate_tree(tmp_path / "features-train" / "catalog.json") == 2
    assert validate_tree(result.catalog) == 2 + len(result.items)
    assert list(result.extra["timings_s"]) == ["synth", "cube", "features", "chips"]
    assert all(seconds > 0 for seconds in result.extra["timings_s"].values())
    assert result.extra["stages"]["features"]["dates"] == 23
    assert result.extra["stages"]["chips"]["train"] > 0
    assert result.extra["stages"]["chips"]["validation"] > 0


def test_demo_takes_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="demo takes no inputs"):
        demo.run(inputs={"stac": "x"}, output=str(tmp_path), params=DemoParams())

"""`deep-lulc demo` runs the chain that exists so far on the embedded synthetic catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.demo import stage as demo
from deep_lulc.stages.demo.params import DemoParams

from .conftest import validate_tree


def test_demo_runs_synth_and_reports_timings(tmp_path: Path) -> None:
    result = demo.run(inputs={}, output=str(tmp_path), params=DemoParams(size=128, dates=4))
    assert result.catalog == str(tmp_path / "synth" / "catalog.json")
    assert validate_tree(result.catalog) == 1 + 2 + 8 + 2
    assert set(result.extra["timings_s"]) == {"synth"}
    assert result.extra["timings_s"]["synth"] > 0


def test_demo_takes_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="demo takes no inputs"):
        demo.run(inputs={"stac": "x"}, output=str(tmp_path), params=DemoParams())

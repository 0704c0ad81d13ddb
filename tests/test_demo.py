"""`deep-lulc demo` runs the chain that exists so far on the embedded synthetic catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.demo import stage as demo
from deep_lulc.stages.demo.params import DemoParams

from .conftest import validate_tree


@pytest.mark.slow
def test_demo_chains_synth_to_a_trained_model(tmp_path: Path) -> None:
    result = demo.run(inputs={}, output=str(tmp_path), params=DemoParams(size=256, dates=6, epochs=1))
    assert result.catalog == str(tmp_path / "model" / "catalog.json")
    assert validate_tree(tmp_path / "synth" / "catalog.json") == 1 + 2 + 12 + 2
    assert validate_tree(tmp_path / "cube-train" / "catalog.json") == 2
    assert validate_tree(tmp_path / "features-train" / "catalog.json") == 2
    assert validate_tree(tmp_path / "chips" / "catalog.json") > 2
    assert validate_tree(result.catalog) == 2
    assert list(result.extra["timings_s"]) == ["synth", "cube", "features", "chips", "train"]
    assert all(seconds > 0 for seconds in result.extra["timings_s"].values())
    assert result.extra["stages"]["features"]["dates"] == 23
    assert result.extra["stages"]["chips"]["train"] > 0
    assert result.extra["stages"]["chips"]["validation"] > 0
    assert result.extra["stages"]["train"]["miou"] is not None
    table = demo.iou_table(result)
    assert table[0].split() == ["class", "U-Net", "IoU", "LightGBM", "IoU"]
    assert table[-1].startswith("mIoU")


def test_demo_takes_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="demo takes no inputs"):
        demo.run(inputs={"stac": "x"}, output=str(tmp_path), params=DemoParams())

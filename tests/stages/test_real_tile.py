"""The README pipeline at its defaults on real Sentinel-2 (`benchmarks/real.py`): the default deep model maps
the unseen half of the real crop tile better than LightGBM on the same chips, as the README says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.real import TILE, run_benchmark, table

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_shared,  # the real tile lives in ../shared/realdata
]
RECORDED = Path(__file__).resolve().parents[2] / "docs" / "real-figures.json"


def test_the_default_deep_model_beats_lightgbm_on_the_real_tile(tmp_path: Path) -> None:
    data = run_benchmark(TILE, tmp_path)
    deep, lightgbm = data["models"]["deep"], data["models"]["lightgbm"]
    print("\n".join(table(data)))
    assert deep["scored_classes"] == lightgbm["scored_classes"]
    assert len(deep["scored_classes"]) == 6, "the east half has six classes with at least 30 labelled px"
    assert deep["miou"] >= lightgbm["miou"] + 0.03
    recorded = json.loads(RECORDED.read_text())["models"]
    for model in ("deep", "lightgbm"):  # the README's table is this code's result (to float noise across CPUs)
        assert data["models"][model]["miou"] == pytest.approx(recorded[model]["miou"], abs=0.01)

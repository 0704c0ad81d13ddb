"""`deep-lulc demo` runs the chain that exists so far on the embedded synthetic catalog."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.demo import stage as demo
from deep_lulc.stages.demo.params import DemoParams

from ..conftest import PROJECT_ROOT, validate_tree


@pytest.mark.slow
def test_demo_chains_synth_to_change_and_accuracy(tiny_demo: tuple[Path, dict[str, object]]) -> None:
    tmp_path, line = tiny_demo
    result = _result(line)
    assert result.catalog == str(tmp_path / "catalog.json")
    assert validate_tree(result.catalog) > 40  # the root reaches every stage's catalog and item
    assert validate_tree(tmp_path / "synth" / "catalog.json") == 1 + 2 + 12 + 2
    assert (tmp_path / "demo.yaml").read_text() == (PROJECT_ROOT / "configs" / "demo.yaml").read_text()
    run = tmp_path / "demo"  # argo/pipeline.yaml's layout: <output-root>/<workflow name>/
    assert validate_tree(run / "cube-train" / "catalog.json") == 3
    assert validate_tree(run / "features-train" / "catalog.json") == 3
    assert validate_tree(run / "chips" / "catalog.json") > 2
    assert validate_tree(run / "model" / "catalog.json") == 3
    assert validate_tree(run / "model-lightgbm" / "catalog.json") == 3
    for folder in (
        "before/prediction",
        "after/prediction",
        "evaluation-before",
        "evaluation-after",
        "evaluation-change",
        "before/prediction-lightgbm",
        "after/prediction-lightgbm",
        "evaluation-lightgbm-before",
        "evaluation-lightgbm-after",
        "change",
    ):
        assert validate_tree(run / folder / "catalog.json") == 3, folder
    assert list(result.extra["timings_s"]) == [
        "synth",
        "cube",
        "features",
        "chips",
        "train",
        "cube-2023",
        "features-2023",
        "predict-2023",
        "cube-2024",
        "features-2024",
        "predict-2024",
        "change",
        "evaluate-2023",
        "evaluate-2024",
        "evaluate-change",
        "train-lightgbm",
        "predict-lightgbm-2023",
        "predict-lightgbm-2024",
        "evaluate-lightgbm-2023",
        "evaluate-lightgbm-2024",
        "sample",
        "area",
    ]
    assert all(seconds > 0 for seconds in result.extra["timings_s"].values())
    assert result.extra["stages"]["features"]["dates"] == 23
    assert result.extra["stages"]["chips"]["train"] > 0
    assert result.extra["stages"]["chips"]["validation"] > 0
    assert result.extra["stages"]["train"]["miou"] is not None
    stages = result.extra["stages"]
    assert 0 <= stages["evaluate-2024"]["miou"] <= 1
    # A 1-epoch model is too unsure for the joint decision to keep any change; the maps still differ.
    assert stages["change"]["method"] == "joint"
    assert stages["change"]["raw_changed_ha"] > 0
    accuracy = demo.map_accuracy_table({2023: _result(stages["evaluate-2023"]), 2024: _result(stages["evaluate-2024"])})
    assert accuracy[1].split() == ["class", "2023", "2024"]
    assert accuracy[-2].startswith("mIoU")
    summary = demo.change_summary(_result(stages["change"]), _result(stages["evaluate-change"]))
    assert summary[0].startswith("change: ")
    assert "change detection vs labels: F1" in summary[-1]
    # the change map's sample, labelled from the synthetic truth, and its error-adjusted areas
    assert validate_tree(run / "sample-change" / "catalog.json") == 3
    assert validate_tree(run / "area-change" / "catalog.json") == 3
    assert (run / "sample-labelled" / "labelled.gpkg").is_file()
    truth = json.loads((run / "sample-labelled" / "true-areas.json").read_text())["transitions_ha"]
    assert any(name.split("_to_")[0] != name.split("_to_")[1] for name in truth), "the truth holds changes"
    assert stages["area"]["transitions"], "area estimated the change map's transitions"
    assert 0 <= stages["area"]["overall_accuracy"] <= 1
    areas = demo.area_table(_result(stages["area"]), truth, (2023, 2024))
    assert areas[0].startswith("change areas 2023 -> 2024 from a labelled sample")
    assert areas[1].split() == ["transition", "pixel", "count", "estimate", "+-", "95", "%", "CI", "true"]
    assert len(areas) > 2
    assert any(line.startswith("change areas") for line in result.extra["summary"])
    report = tmp_path / "report.html"
    assert result.extra["report"] == str(report)
    page = report.read_text()
    pictures = re.findall(r'<img src="([^"]+)"', page)
    assert len(pictures) == 13, "RGB, two maps, change, labels/prediction/errors per year, confusion, loss"
    for picture in pictures:
        assert (tmp_path / picture).read_bytes()[:4] == b"\x89PNG", picture
    for heading in ("Map accuracy", "U-Net vs LightGBM", "Change 2023", "Time per stage"):
        assert heading in page
    summary_text = "\n".join(result.extra["summary"])
    assert "U-Net IoU" in summary_text
    assert "deep model vs LightGBM" in summary_text
    assert "map accuracy on the prediction AOI" in summary_text
    assert "time per stage: synth" in summary_text
    assert str(report) in summary_text
    table = demo.iou_table(_result(stages["train"]), _result(stages["train-lightgbm"]))
    assert table[1].split() == ["class", "U-Net", "IoU", "LightGBM", "IoU"]
    assert "-" not in table[2].split()[1:], "both models' chip scores are filled in"
    comparison = demo.model_comparison_table(
        {y: _result(stages[f"evaluate-{y}"]) for y in (2023, 2024)},
        {y: _result(stages[f"evaluate-lightgbm-{y}"]) for y in (2023, 2024)},
        result.extra["timings_s"],
    )
    assert comparison[-2].split()[0] == "mIoU"
    assert len(comparison[-2].split()) == 5
    assert table[-1].startswith("mIoU")


def _result(line: dict[str, object]) -> StageResult:
    """A stage's result back from its JSON line, as the demo's summary functions take it."""
    fields = dict(line)
    return StageResult(
        stage=str(fields.pop("stage")),
        catalog=str(fields.pop("catalog")),
        items=tuple(fields.pop("items")),  # type: ignore[arg-type]
        extra={k: v for k, v in fields.items() if k != "version"},
    )


def test_demo_takes_no_inputs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"invalid inputs: --stac: Extra inputs are not permitted"):
        demo.run(inputs={"stac": "x"}, output=str(tmp_path), params=DemoParams())
    assert not any(tmp_path.iterdir()), "refused before anything was written"


@pytest.mark.slow
def test_demo_twice_in_one_prefix_loses_nothing(tiny_demo: tuple[Path, dict[str, object]]) -> None:
    """The soak: the same chain again over its own outputs reuses every step (no process started) and still
    validates."""
    folder, first = tiny_demo
    again = demo.run(inputs={}, output=str(folder), params=DemoParams(size=256, dates=6, epochs=1))
    stages = first["stages"]  # the result line: extras sit at the top level
    assert isinstance(stages, dict)
    for name, line in again.extra["stages"].items():
        assert line == stages[name], f"{name} changed on the rerun"
    assert set(again.extra["reused"]) >= {"train", "predict-2024", "train-lightgbm", "evaluate-lightgbm-2024"}
    assert validate_tree(again.catalog) > 40
    assert again.extra["timings_s"]["train"] < 5, "training was not redone"

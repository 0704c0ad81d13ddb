"""The demo's chain: the synthetic catalog, then configs/demo.yaml run by `deep-lulc run`'s runner (the steps
of argo/pipeline.yaml, each a `deep-lulc` process), then what only the demo does: LightGBM beside the deep
model (the same WorkflowTemplate templates, as steps after the pipeline) and the change map's sample,
labelled from the synthetic truth, for error-adjusted areas.

Every step's result is kept under the demo's own name (`cube`, `predict-2023`, ...) with its wall time, for
the summary, the root catalog and the report.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.stage.contract import StageInputs, StageParams, StageResult
from deep_lulc.stages.area import stage as area
from deep_lulc.stages.area.params import AreaInputs, AreaParams
from deep_lulc.stages.demo.reference import label_from_truth, truth_of, write_true_areas
from deep_lulc.stages.run.engine import Outcome
from deep_lulc.stages.run.runner import Runner
from deep_lulc.stages.sample import stage as sample
from deep_lulc.stages.sample.params import SampleInputs, SampleParams

log = logging.getLogger(__name__)
SAMPLE_SIZE, SAMPLE_FLOOR = 1_000, 30  # points of the change map's sample, and each stratum's minimum
PERIODS = ("before", "after")  # argo/pipeline.yaml's two periods, the synthetic catalog's two years
TRAINING = {"cube": "cube-train", "features": "features-train", "chips": "chips", "train": "train"}


def labels_by_year(synth_result: StageResult) -> dict[int, str]:
    """Label vector per synthetic period, from synth's manifest (the second period's labels carry the changes)."""
    root = synth_result.catalog.rsplit("/", 1)[0]
    manifest = storage.read_json(join_href(root, "synth.json"), what="synthetic manifest")
    return {int(period["year"]): join_href(root, str(period["labels"])) for period in manifest["periods"]}


def result_of(outcome: Outcome) -> StageResult:
    """A step's result back from its JSON line, as the summary functions take it."""
    fields: dict[str, Any] = dict(outcome.result or {})
    return StageResult(
        stage=str(fields.pop("stage", "")),
        catalog=str(fields.pop("catalog", outcome.outputs.get("catalog", ""))),
        items=tuple(fields.pop("items", ())),
        extra={key: value for key, value in fields.items() if key != "version"},
    )


class Chain:
    """Keeps every step's result and wall time by the demo's name for it."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.timings: dict[str, float] = {}
        self.results: dict[str, StageResult] = {}
        self.reused: list[str] = []  # names whose runner steps all finished in an earlier run

    def step(
        self, name: str, run: Callable[..., StageResult], inputs: StageInputs, folder: str, params: StageParams
    ) -> StageResult:
        """A stage called in this process (synth, sample, area: the demo's own steps around the pipeline)."""
        started = time.perf_counter()
        result = run(inputs=inputs, output=join_href(self.output, folder), params=params)
        self.keep(name, result, time.perf_counter() - started)
        return result

    def keep(self, name: str, result: StageResult, seconds: float) -> None:
        self.timings[name] = round(seconds, 2)
        self.results[name] = result
        log.info("%s done in %.1f s -> %s", name, self.timings[name], result.catalog)

    def adopt(self, name: str, outcomes: list[Outcome], *, result: Outcome | None = None) -> StageResult:
        """Runner steps under one demo name: the result of `result` (default: the last), the time of all."""
        kept = result_of(result or outcomes[-1])
        if all(outcome.reused for outcome in outcomes):
            self.reused.append(name)
        self.keep(name, kept, sum(outcome.seconds or 0.0 for outcome in outcomes))
        return kept

    def adopt_pipeline(self, steps: Mapping[str, Outcome], years: tuple[int, int]) -> None:
        """The pipeline's steps under the names the summary and report use, in the order they ran."""
        for name, path in TRAINING.items():
            self.adopt(name, [steps[path]])
        for period, year in zip(PERIODS, years, strict=True):
            tiles = tile_count(steps, period)
            for stage in ("cube", "features"):
                self.adopt(f"{stage}-{year}", [steps[f"map-{period}/map-tile({i})/{stage}"] for i in range(tiles)])
            predicts = [steps[f"map-{period}/map-tile({i})/predict"] for i in range(tiles)]
            merged = steps[f"map-{period}/merge"]
            self.adopt(f"predict-{year}", [*predicts, merged], result=merged)
        self.adopt("change", [steps["change"]])
        for period, year in zip(PERIODS, years, strict=True):
            self.adopt(f"evaluate-{year}", [steps[f"evaluate-{period}"]])
        self.adopt("evaluate-change", [steps["evaluate-change"]])

    def lightgbm(self, runner: Runner, years: tuple[int, int], labels: Mapping[int, str]) -> None:
        """LightGBM on the pipeline's chips, mapped tile by tile on the pipeline's features and scored like the
        deep model: the same templates, so the comparison differs in the model alone."""
        steps, folder = runner.steps, runner.folder
        model = runner.template(
            "train",
            {
                "chips": steps["chips"].outputs["catalog"],
                "out": join_href(folder, "model-lightgbm"),
                "architecture": "lightgbm",
            },
            path="lightgbm/train",
        )
        self.adopt("train-lightgbm", [model])

        def map_period(period: str, year: int) -> tuple[list[Outcome], Outcome, Outcome]:
            plan = steps[f"map-{period}/plan-tiles"].outputs
            predicted = []
            for index, tile in enumerate(json.loads(plan["tiles"])):
                given = {
                    "model": model.outputs["catalog"],
                    "features": steps[f"map-{period}/map-tile({index})/features"].outputs["catalog"],
                    "tile": str(tile["id"]),
                    "tiles": plan["tiles-file"],
                    "out": join_href(folder, period, "tiles", str(tile["id"]), "prediction-lightgbm"),
                }
                predicted.append(runner.template("predict", given, path=f"lightgbm/{period}/{index}/predict"))
            hrefs = json.dumps([outcome.outputs["catalog"] for outcome in predicted])
            merged = runner.template(
                "merge",
                {"tiles": hrefs, "out": join_href(folder, period, "prediction-lightgbm")},
                path=f"lightgbm/{period}",
            )
            given = {
                "prediction": merged.outputs["catalog"],
                "labels": labels[year],
                "out": join_href(folder, f"evaluation-lightgbm-{period}"),
            }
            return predicted, merged, runner.template("evaluate", given, path=f"lightgbm/evaluate-{period}")

        with ThreadPoolExecutor(max_workers=len(PERIODS)) as pool:  # the periods side by side, as in the pipeline
            mapped = list(pool.map(map_period, PERIODS, years))
        for (predicted, merged, _), year in zip(mapped, years, strict=True):
            self.adopt(f"predict-lightgbm-{year}", [*predicted, merged], result=merged)
        for (_, _, scored), year in zip(mapped, years, strict=True):
            self.adopt(f"evaluate-lightgbm-{year}", [scored])

    def estimate_change_areas(
        self, change_result: StageResult, labels: Mapping[int, str], years: tuple[int, int], *, seed: int
    ) -> tuple[StageResult, dict[str, float]]:
        """sample -> label (the synthetic truth standing in for the analyst) -> area, on the change map; returns
        the area result and the true hectares of every transition."""
        drawn = self.step(
            "sample",
            sample.run,
            SampleInputs(map=change_result.catalog),
            "sample-change",
            SampleParams(size=SAMPLE_SIZE, min_per_stratum=SAMPLE_FLOOR, seed=seed),
        )
        truth = truth_of(change_result.catalog, labels[years[0]], labels[years[1]])
        folder = join_href(self.output, "sample-labelled")
        labelled = label_from_truth(str(drawn.extra["sample"]), truth, folder)
        write_true_areas(truth, folder)
        estimated = self.step(
            "area", area.run, AreaInputs(map=change_result.catalog, sample=labelled), "area-change", AreaParams()
        )
        return estimated, truth.transition_ha()


def tile_count(steps: Mapping[str, Outcome], period: str) -> int:
    return len(json.loads(steps[f"map-{period}/plan-tiles"].outputs["tiles"]))

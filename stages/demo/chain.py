"""The demo's chain of stage calls: each step is timed, kept for the root catalog and report, and logged.

Each stage is called through its `run` with its typed Inputs model, exactly as its container's command
line would call it, into a sub-folder of the demo's output.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.sources.scene_selection import SceneInputs
from deep_lulc.shared.stage.contract import NoInputs, StageInputs, StageParams, StageResult
from deep_lulc.stages.area import stage as area
from deep_lulc.stages.area.params import AreaInputs, AreaParams
from deep_lulc.stages.chips import stage as chips
from deep_lulc.stages.chips.params import ChipsInputs, ChipsParams
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.demo.reference import label_from_truth, truth_of, write_true_areas
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateInputs, EvaluateParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesInputs, FeaturesParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict.params import PredictInputs, PredictParams
from deep_lulc.stages.sample import stage as sample
from deep_lulc.stages.sample.params import SampleInputs, SampleParams
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.params import TrainInputs, TrainParams

log = logging.getLogger(__name__)
SAMPLE_SIZE, SAMPLE_FLOOR = 1_000, 30  # points of the change map's sample, and each stratum's minimum


@dataclass(frozen=True)
class Trained:
    """What the training half of the chain hands on: the synthetic catalog and the two model items."""

    synth: StageResult
    deep: StageResult
    lightgbm: StageResult


@dataclass(frozen=True)
class Maps:
    """Both models' maps of the prediction AOI per period, and each period's label vector."""

    deep: dict[int, StageResult]
    lightgbm: dict[int, StageResult]
    labels: dict[int, str]


def labels_by_year(synth_result: StageResult) -> dict[int, str]:
    """Label vector per synthetic period, from synth's manifest (the second period's labels carry the changes)."""
    root = synth_result.catalog.rsplit("/", 1)[0]
    manifest = storage.read_json(join_href(root, "synth.json"), what="synthetic manifest")
    return {int(period["year"]): join_href(root, str(period["labels"])) for period in manifest["periods"]}


def _year(year: int) -> tuple[dt.date, dt.date]:
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


class Chain:
    """Runs steps into sub-folders of `output`, keeping every result and its wall time by step name."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.timings: dict[str, float] = {}
        self.results: dict[str, StageResult] = {}

    def step(
        self, name: str, run: Callable[..., StageResult], inputs: StageInputs, folder: str, params: StageParams
    ) -> StageResult:
        started = time.perf_counter()
        result = run(inputs=inputs, output=join_href(self.output, folder), params=params)
        self.timings[name] = round(time.perf_counter() - started, 2)
        self.results[name] = result
        log.info("%s done in %.1f s -> %s", name, self.timings[name], result.catalog)
        return result

    def train(self, params: DemoParams) -> Trained:
        """synth -> cube -> features -> chips on the training AOI, then the deep model and LightGBM."""
        year = SynthParams.model_fields["year"].default
        synthetic = SynthParams(seed=params.seed, size=params.size, dates=params.dates)
        synth_result = self.step("synth", synth.run, NoInputs(), "synth", synthetic)
        start, end = _year(year)
        scenes = SceneInputs(stac=synth_result.catalog, aoi=str(synth_result.extra["aoi_train"]))
        cube_result = self.step("cube", cube.run, scenes, "cube-train", CubeParams(start=start, end=end))
        features_inputs = FeaturesInputs(cube=cube_result.catalog)
        features_result = self.step("features", features.run, features_inputs, "features-train", FeaturesParams())
        chips_inputs = ChipsInputs(features=features_result.catalog, labels=str(synth_result.extra["labels"]))
        chips_result = self.step("chips", chips.run, chips_inputs, "chips", ChipsParams(seed=params.seed))
        training = TrainInputs(chips=chips_result.catalog)
        deep = self.step("train", train.run, training, "model", TrainParams(epochs=params.epochs, seed=params.seed))
        lightgbm_params = TrainParams(architecture="lightgbm", seed=params.seed)
        lightgbm = self.step("train-lightgbm", train.run, training, "model-lightgbm", lightgbm_params)
        return Trained(synth=synth_result, deep=deep, lightgbm=lightgbm)

    def map_years(self, trained: Trained) -> Maps:
        """cube -> features -> predict (both models) on the prediction AOI, for every synthetic period."""
        labels = labels_by_year(trained.synth)
        deep: dict[int, StageResult] = {}
        lightgbm: dict[int, StageResult] = {}
        scenes = SceneInputs(stac=trained.synth.catalog, aoi=str(trained.synth.extra["aoi_predict"]))
        for year in sorted(labels):
            start, end = _year(year)
            cube_result = self.step(
                f"cube-{year}", cube.run, scenes, f"cube-predict-{year}", CubeParams(start=start, end=end)
            )
            features_result = self.step(
                f"features-{year}",
                features.run,
                FeaturesInputs(cube=cube_result.catalog),
                f"features-predict-{year}",
                FeaturesParams(),
            )
            deep[year] = self.step(
                f"predict-{year}",
                predict.run,
                PredictInputs(model=trained.deep.catalog, features=features_result.catalog),
                f"prediction-{year}",
                PredictParams(probabilities=True),
            )
            lightgbm[year] = self.step(
                f"predict-lightgbm-{year}",
                predict.run,
                PredictInputs(model=trained.lightgbm.catalog, features=features_result.catalog),
                f"prediction-lightgbm-{year}",
                PredictParams(),
            )
        return Maps(deep=deep, lightgbm=lightgbm, labels=labels)

    def score_maps(
        self, model: str, maps: Mapping[int, StageResult], labels: Mapping[int, str], years: Sequence[int]
    ) -> dict[int, StageResult]:
        """Each year's map of one model against that year's labels (`model` '' is the deep model)."""
        return {
            year: self.step(
                f"evaluate-{model}{year}",
                evaluate.run,
                EvaluateInputs(prediction=maps[year].catalog, labels=labels[year]),
                f"evaluation-{model}{year}",
                EvaluateParams(),
            )
            for year in years
        }

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

"""`deep-lulc demo`: run every stage that exists on the synthetic catalog and summarise what it did."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.stage.contract import NoInputs, StageResult, typed_inputs
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.chips import stage as chips
from deep_lulc.stages.chips.params import ChipsParams
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.demo.report import write_report
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict.params import PredictParams
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.params import TrainParams

STAGE = "demo"
log = logging.getLogger(__name__)


def _metrics_report(result: StageResult) -> dict[str, Any]:
    from pathlib import Path

    path = Path(result.catalog).parent / result.items[0] / "metrics.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return report


def iou_table(result: StageResult, lightgbm: StageResult | None = None) -> list[str]:
    """Per-class IoU on the validation chips: the deep model beside LightGBM (its own model item when given,
    else the chip-level baseline trained with the deep model), as text lines."""
    report = _metrics_report(result)
    deep = report.get("unet", {})
    other = _metrics_report(lightgbm).get("unet", {}) if lightgbm is not None else report.get("baseline") or {}
    lines = ["validation chips (IoU):", f"{'class':<20} {'U-Net IoU':>10} {'LightGBM IoU':>13}"]
    for name, values in deep.get("per_class", {}).items():
        if not values.get("support"):
            continue
        theirs = other.get("per_class", {}).get(name, {}).get("iou")
        mine = values.get("iou")
        lines.append(
            f"{name:<20} {'-' if mine is None else f'{mine:.3f}':>10} {'-' if theirs is None else f'{theirs:.3f}':>13}"
        )
    lines.append(
        f"{'mIoU':<20} {deep.get('miou') or 0:>10.3f} {other.get('miou') or 0:>13.3f}   "
        f"(the original's 'IoU', pixel accuracy: {deep.get('seed_metric') or 0:.3f})"
    )
    return lines


def model_comparison_table(
    deep: Mapping[int, StageResult], lightgbm: Mapping[int, StageResult], timings: Mapping[str, float]
) -> list[str]:
    """The deep model against LightGBM as maps of the prediction AOI (unseen in training), per class and year."""
    years = sorted(deep)
    names = sorted({name for result in deep.values() for name in result.extra["iou"]})
    header = "".join(f"{f'deep {y}':>11}{f'LightGBM {y}':>14}" for y in years)
    lines = ["maps of the prediction AOI, deep model vs LightGBM (IoU):", f"{'class':<20}{header}"]

    def cell(result: StageResult, name: str, width: int) -> str:
        value = result.extra["iou"].get(name)
        return f"{value:>{width}.3f}" if value is not None else f"{'-':>{width}}"

    for name in names:
        lines.append(f"{name:<20}" + "".join(cell(deep[y], name, 11) + cell(lightgbm[y], name, 14) for y in years))
    lines.append(
        f"{'mIoU':<20}" + "".join(f"{deep[y].extra['miou']:>11.3f}{lightgbm[y].extra['miou']:>14.3f}" for y in years)
    )
    lines.append(
        f"training time: deep model {timings.get('train', 0):.0f} s, LightGBM {timings.get('train-lightgbm', 0):.0f} s"
    )
    return lines


def _labels_by_year(synth_result: StageResult) -> dict[int, str]:
    """Label vector per synthetic period, from synth's manifest (the second period's labels carry the changes)."""
    root = synth_result.catalog.rsplit("/", 1)[0]
    manifest = storage.read_json(join_href(root, "synth.json"), what="synthetic manifest")
    return {int(period["year"]): join_href(root, str(period["labels"])) for period in manifest["periods"]}


def map_accuracy_table(scores: Mapping[int, StageResult]) -> list[str]:
    """Per-class IoU of each period's map against that period's labels (prediction AOI, unseen in training)."""
    years = sorted(scores)
    names = sorted({name for result in scores.values() for name in result.extra["iou"]})
    lines = ["map accuracy on the prediction AOI (IoU):", f"{'class':<20}" + "".join(f"{y:>10}" for y in years)]
    for name in names:
        cells = "".join(
            f"{scores[y].extra['iou'][name]:>10.3f}" if name in scores[y].extra["iou"] else f"{'-':>10}" for y in years
        )
        lines.append(f"{name:<20}{cells}")
    lines.append(f"{'mIoU':<20}" + "".join(f"{scores[y].extra['miou']:>10.3f}" for y in years))
    lines.append(f"{'overall accuracy':<20}" + "".join(f"{scores[y].extra['overall_accuracy']:>10.3f}" for y in years))
    return lines


def change_summary(change_result: StageResult, scores: StageResult) -> list[str]:
    extra, accuracy = change_result.extra, scores.extra
    lines = [
        f"change: {extra['changed_ha']:.1f} ha changed ({100 * extra['changed_fraction']:.1f} % of the mapped area)",
    ]
    lines += [f"  {t['from']} -> {t['to']}: {t['ha']:.1f} ha" for t in extra["top_transitions"][:3]]
    lines.append(
        f"change detection vs labels: F1 {_number(accuracy['change_f1'])} (precision "
        f"{_number(accuracy.get('change_precision'))}, recall {_number(accuracy.get('change_recall'))}), "
        f"IoU {_number(accuracy['change_iou'])}, "
        f"from->to correct on {_number(accuracy['transition_accuracy'], percent=True)} of truly changed pixels"
    )
    return lines


def _number(value: float | None, *, percent: bool = False) -> str:
    """Scores are undefined (None) when nothing was predicted or present; say so rather than fail."""
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if percent else f"{value:.3f}"


ROOT_TITLES = {
    "synth": "Synthetic Sentinel-2 L2A time series, labels and AOIs",
    "cube": "Imagery cube, training AOI",
    "features": "Features, training AOI",
    "chips": "Training chips",
    "train": "Trained temporal U-Net (MLM model item)",
    "train-lightgbm": "Trained LightGBM pixel classifier (MLM model item)",
    "change": "Land-cover change between the two periods",
}


def write_root_catalog(output: str, results: Mapping[str, StageResult]) -> str:
    """One catalog over every stage's output, so a STAC browser can start from the demo's root folder."""
    base = storage.normalize_href(output).rstrip("/")
    links: list[dict[str, str]] = [
        {"rel": "root", "href": "./catalog.json", "type": "application/json"},
    ]
    for name, result in results.items():
        relative = storage.normalize_href(result.catalog).removeprefix(base + "/")
        year = name.rsplit("-", 1)[-1]
        title = ROOT_TITLES.get(name) or (
            f"{name.rsplit('-', 1)[0].capitalize()}, prediction AOI, {year}" if year.isdigit() else name
        )
        links.append({"rel": "child", "href": f"./{relative}", "type": "application/json", "title": title})
    document = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "deep-lulc-demo",
        "title": "Deep LULC demo",
        "description": "Every stage of the Deep LULC chain run on the synthetic catalog: imagery cubes, features, "
        "chips, the model, predictions for two periods, their change and their accuracy.",
        "links": links,
    }
    return write_file_atomically(join_href(output, "catalog.json"), (json.dumps(document, indent=2) + "\n").encode())


@typed_inputs
def run(*, inputs: NoInputs, output: str, params: DemoParams) -> StageResult:
    """Chain the stages into sub-folders of `output`; returns the last catalog and per-stage timings."""
    timings: dict[str, float] = {}
    results: dict[str, StageResult] = {}

    def timed(name: str, call: Callable[[], StageResult]) -> StageResult:
        started = time.perf_counter()
        result = call()
        timings[name] = round(time.perf_counter() - started, 2)
        results[name] = result
        log.info("%s done in %.1f s -> %s", name, timings[name], result.catalog)
        return result

    year = SynthParams.model_fields["year"].default
    synth_result = timed(
        "synth",
        lambda: synth.run(
            inputs={},
            output=join_href(output, "synth"),
            params=SynthParams(seed=params.seed, size=params.size, dates=params.dates),
        ),
    )
    cube_result = timed(
        "cube",
        lambda: cube.run(
            inputs={"stac": synth_result.catalog, "aoi": str(synth_result.extra["aoi_train"])},
            output=join_href(output, "cube-train"),
            params=CubeParams(start=dt.date(year, 1, 1), end=dt.date(year, 12, 31)),
        ),
    )
    features_result = timed(
        "features",
        lambda: features.run(
            inputs={"cube": cube_result.catalog}, output=join_href(output, "features-train"), params=FeaturesParams()
        ),
    )
    chips_result = timed(
        "chips",
        lambda: chips.run(
            inputs={"features": features_result.catalog, "labels": str(synth_result.extra["labels"])},
            output=join_href(output, "chips"),
            params=ChipsParams(seed=params.seed),
        ),
    )
    train_result = timed(
        "train",
        lambda: train.run(
            inputs={"chips": chips_result.catalog},
            output=join_href(output, "model"),
            params=TrainParams(epochs=params.epochs, seed=params.seed),
        ),
    )
    lightgbm_result = timed(
        "train-lightgbm",
        lambda: train.run(
            inputs={"chips": chips_result.catalog},
            output=join_href(output, "model-lightgbm"),
            params=TrainParams(architecture="lightgbm", seed=params.seed),
        ),
    )
    labels_by_year = _labels_by_year(synth_result)
    predictions: dict[int, StageResult] = {}
    lightgbm_predictions: dict[int, StageResult] = {}
    for period_year in sorted(labels_by_year):
        predict_cube = timed(
            f"cube-{period_year}",
            partial(
                cube.run,
                inputs={"stac": synth_result.catalog, "aoi": str(synth_result.extra["aoi_predict"])},
                output=join_href(output, f"cube-predict-{period_year}"),
                params=CubeParams(start=dt.date(period_year, 1, 1), end=dt.date(period_year, 12, 31)),
            ),
        )
        predict_features = timed(
            f"features-{period_year}",
            partial(
                features.run,
                inputs={"cube": predict_cube.catalog},
                output=join_href(output, f"features-predict-{period_year}"),
                params=FeaturesParams(),
            ),
        )
        predictions[period_year] = timed(
            f"predict-{period_year}",
            partial(
                predict.run,
                inputs={"model": train_result.catalog, "features": predict_features.catalog},
                output=join_href(output, f"prediction-{period_year}"),
                params=PredictParams(probabilities=True),
            ),
        )
        lightgbm_predictions[period_year] = timed(
            f"predict-lightgbm-{period_year}",
            partial(
                predict.run,
                inputs={"model": lightgbm_result.catalog, "features": predict_features.catalog},
                output=join_href(output, f"prediction-lightgbm-{period_year}"),
                params=PredictParams(),
            ),
        )
    first, last = min(predictions), max(predictions)
    change_result = timed(
        "change",
        lambda: change.run(
            inputs={"before": predictions[first].catalog, "after": predictions[last].catalog},
            output=join_href(output, f"change-{first}-{last}"),
            params=ChangeParams(),
        ),
    )

    def score_maps(model: str, maps: Mapping[int, StageResult]) -> dict[int, StageResult]:
        """Each year's map of one model against that year's labels (`model` '' is the deep model)."""
        return {
            year: timed(
                f"evaluate-{model}{year}",
                partial(
                    evaluate.run,
                    inputs={"prediction": maps[year].catalog, "labels": labels_by_year[year]},
                    output=join_href(output, f"evaluation-{model}{year}"),
                    params=EvaluateParams(),
                ),
            )
            for year in (first, last)
        }

    map_scores = score_maps("", predictions)
    lightgbm_scores = score_maps("lightgbm-", lightgbm_predictions)
    change_scores = timed(
        "evaluate-change",
        lambda: evaluate.run(
            inputs={
                "prediction": change_result.catalog,
                "labels": labels_by_year[last],
                "before_labels": labels_by_year[first],
            },
            output=join_href(output, "evaluation-change"),
            params=EvaluateParams(),
        ),
    )
    root = write_root_catalog(output, results)
    report = write_report(output, results, years=(first, last), timings=timings)
    summary = [
        *iou_table(train_result, lightgbm_result),
        "",
        *model_comparison_table(map_scores, lightgbm_scores, timings),
        "",
        *map_accuracy_table(map_scores),
        "",
        *change_summary(change_result, change_scores),
        "",
        "time per stage: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()),
        f"outputs: {root} (STAC root), {report} (open in a browser)",
    ]
    return StageResult(
        stage=STAGE,
        catalog=root,
        items=change_result.items,
        extra={
            "report": report,
            "summary": summary,
            "stages": {name: result.to_dict() for name, result in results.items()},
            "timings_s": timings,
        },
    )

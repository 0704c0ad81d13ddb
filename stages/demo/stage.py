"""`deep-lulc demo`: run every stage on the synthetic catalog and summarise what it did.

The demo is the in-process twin of `argo/pipeline.yaml`: the same stages, in the same order, on the same
kinds of inputs (train on one AOI, map another in two periods, their change, scores where labels exist),
called as functions instead of containers. A change to the pipeline's wiring belongs in both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.stage.contract import NoInputs, StageResult, typed_inputs
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams
from deep_lulc.stages.demo.chain import Chain
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.demo.report import write_report
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateInputs, EvaluateParams

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


def area_table(estimated: StageResult, truth_ha: Mapping[str, float], years: tuple[int, int]) -> list[str]:
    """The change map's transitions: pixel counts, error-adjusted areas with 95 % intervals, and the truth."""
    transitions = estimated.extra["transitions"]
    changes = [name for name in transitions if name.split("_to_")[0] != name.split("_to_")[1]]
    changes += [name for name in truth_ha if name not in transitions and name.split("_to_")[0] != name.split("_to_")[1]]
    changes.sort(key=lambda name: -truth_ha.get(name, 0.0))
    lines = [
        f"change areas {years[0]} -> {years[1]} from a labelled sample (Olofsson et al. 2014; ha):",
        f"{'transition':<34}{'pixel count':>12}{'estimate +- 95 % CI':>24}{'true':>9}",
    ]
    for name in changes[:10]:
        record = transitions.get(name)
        mapped = f"{record['mapped_ha']:.1f}" if record else "0.0"
        found = f"{record['estimated_ha']:.1f} +- {record['ci95_ha']:.1f}" if record else "not sampled"
        lines.append(f"{name:<34}{mapped:>12}{found:>24}{truth_ha.get(name, 0.0):>9.1f}")
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
    "sample": "Stratified random sample of the change map, for reference labelling",
    "area": "Error-adjusted change areas with 95 % intervals, from the labelled sample",
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
    """Chain the stages into sub-folders of `output`, as argo/pipeline.yaml chains their containers; returns
    the root catalog, the summary lines and per-stage timings."""
    chain = Chain(output)
    trained = chain.train(params)
    maps = chain.map_years(trained)
    first, last = min(maps.deep), max(maps.deep)
    change_result = chain.step(
        "change",
        change.run,
        ChangeInputs(before=maps.deep[first].catalog, after=maps.deep[last].catalog),
        f"change-{first}-{last}",
        ChangeParams(),
    )
    map_scores = chain.score_maps("", maps.deep, maps.labels, (first, last))
    lightgbm_scores = chain.score_maps("lightgbm-", maps.lightgbm, maps.labels, (first, last))
    change_scores = chain.step(
        "evaluate-change",
        evaluate.run,
        EvaluateInputs(prediction=change_result.catalog, labels=maps.labels[last], before_labels=maps.labels[first]),
        "evaluation-change",
        EvaluateParams(),
    )
    estimated, truth_ha = chain.estimate_change_areas(change_result, maps.labels, (first, last), seed=params.seed)
    root = write_root_catalog(output, chain.results)
    report = write_report(output, chain.results, years=(first, last), timings=chain.timings)
    summary = [
        *iou_table(trained.deep, trained.lightgbm),
        "",
        *model_comparison_table(map_scores, lightgbm_scores, chain.timings),
        "",
        *map_accuracy_table(map_scores),
        "",
        *change_summary(change_result, change_scores),
        "",
        *area_table(estimated, truth_ha, (first, last)),
        "",
        "time per stage: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in chain.timings.items()),
        f"outputs: {root} (STAC root), {report} (open in a browser)",
    ]
    return StageResult(
        stage=STAGE,
        catalog=root,
        items=change_result.items,
        extra={
            "report": report,
            "summary": summary,
            "stages": {name: result.to_dict() for name, result in chain.results.items()},
            "timings_s": chain.timings,
        },
    )

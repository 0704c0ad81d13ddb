"""`deep-lulc demo`: run every stage on the synthetic catalog and summarise what it did.

The demo is a run config, configs/demo.yaml, run by `deep-lulc run`'s runner: argo/pipeline.yaml's steps
(train on one AOI, map another in two periods tile by tile, their change, scores where labels exist), each a
`deep-lulc` process as in Argo's containers. Around it the demo writes the synthetic catalog the config
points at, adds LightGBM beside the deep model and the change map's labelled sample, and prints a summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.stage.contract import NoInputs, StageResult, typed_inputs
from deep_lulc.stages.demo.chain import PERIODS, Chain, labels_by_year
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.demo.report import write_report
from deep_lulc.stages.run.config import RunConfig, read_config, resolve_paths
from deep_lulc.stages.run.runner import Runner
from deep_lulc.stages.run.steps import packaged_config
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams

STAGE = "demo"
log = logging.getLogger(__name__)


def _metrics_report(result: StageResult) -> dict[str, Any]:
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


CONFIG_NAME = "demo.yaml"


def demo_config(output: str, params: DemoParams, years: tuple[int, int]) -> RunConfig:
    """configs/demo.yaml, copied beside the synthetic catalog it points at (so `deep-lulc run` reruns it), with
    the demo's epochs; its periods must be the catalog's years."""
    text = packaged_config(CONFIG_NAME)
    write_file_atomically(join_href(output, CONFIG_NAME), text.encode())
    overrides = {} if params.epochs is None else {"model.epochs": params.epochs}
    config = resolve_paths(read_config(text, source=CONFIG_NAME, overrides=overrides), output)
    periods = (config.predict.before.start.year, config.predict.after.start.year)
    if periods != years:
        raise RuntimeError(f"configs/{CONFIG_NAME} maps {periods}, the synthetic catalog holds {years}")
    return config


@typed_inputs
def run(*, inputs: NoInputs, output: str, params: DemoParams) -> StageResult:
    """Synthesise the catalog, run the demo config's pipeline on it, add the demo's own steps; returns the
    root catalog, the summary lines and per-stage timings."""
    chain = Chain(output)
    synthetic = chain.step(
        "synth", synth.run, NoInputs(), "synth", SynthParams(seed=params.seed, size=params.size, dates=params.dates)
    )
    labels = labels_by_year(synthetic)
    first, last = min(labels), max(labels)
    config = demo_config(output, params, (first, last))
    root = output if storage.is_remote(output) else str(Path(output).resolve())  # the steps' hrefs, absolute
    with Runner(config, root, jobs=params.jobs) as runner:
        chain.adopt_pipeline(runner.run(), (first, last))
        chain.lightgbm(runner, (first, last), labels)
    chain.output = runner.folder  # the demo's own steps beside the pipeline's
    results = chain.results
    estimated, truth_ha = chain.estimate_change_areas(results["change"], labels, (first, last), seed=params.seed)
    root = write_root_catalog(output, results)
    report = write_report(output, results, years=(first, last), timings=chain.timings)
    maps = {year: results[f"evaluate-{year}"] for year in (first, last)}
    lightgbm_maps = {year: results[f"evaluate-lightgbm-{year}"] for year in (first, last)}
    summary = [
        *iou_table(results["train"], results["train-lightgbm"]),
        "",
        *model_comparison_table(maps, lightgbm_maps, chain.timings),
        "",
        *map_accuracy_table(maps),
        "",
        *change_summary(results["change"], results["evaluate-change"]),
        "",
        *area_table(estimated, truth_ha, (first, last)),
        "",
        "time per stage: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in chain.timings.items()),
        f"outputs: {root} (STAC root), {report} (open in a browser)",
    ]
    return StageResult(
        stage=STAGE,
        catalog=root,
        items=results["change"].items,
        extra={
            "report": report,
            "summary": summary,
            "config": join_href(output, CONFIG_NAME),
            "periods": dict(zip(PERIODS, (first, last), strict=True)),
            "stages": {name: result.to_dict() for name, result in results.items()},
            "timings_s": chain.timings,
            "reused": chain.reused,
        },
    )

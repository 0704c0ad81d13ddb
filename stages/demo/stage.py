"""`deep-lulc demo`: run every stage that exists on the synthetic catalog and summarise what it did."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping

from deep_lulc.shared.contract import StageResult
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.storage import join_href
from deep_lulc.stages.chips import stage as chips
from deep_lulc.stages.chips.params import ChipsParams
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.params import TrainParams

STAGE = "demo"
log = logging.getLogger(__name__)


def iou_table(result: StageResult) -> list[str]:
    """Per-class IoU of the U-Net beside the LightGBM pixel baseline, as text lines."""
    from pathlib import Path

    report_path = Path(result.catalog).parent / result.items[0] / "metrics.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    rows = report.get("comparison", [])
    lines = [f"{'class':<20} {'U-Net IoU':>10} {'LightGBM IoU':>13}"]
    for row in rows:
        baseline = "-" if row["baseline_iou"] is None else f"{row['baseline_iou']:.3f}"
        unet = "-" if row["unet_iou"] is None else f"{row['unet_iou']:.3f}"
        lines.append(f"{row['class']:<20} {unet:>10} {baseline:>13}")
    unet_report, baseline_report = report.get("unet", {}), report.get("baseline") or {}
    lines.append(
        f"{'mIoU':<20} {unet_report.get('miou', 0):>10.3f} {baseline_report.get('miou', 0) or 0:>13.3f}   "
        f"(the original's 'IoU', pixel accuracy: {unet_report.get('seed_metric', 0):.3f})"
    )
    return lines


def run(*, inputs: Mapping[str, str], output: str, params: DemoParams) -> StageResult:
    """Chain the stages into sub-folders of `output`; returns the last catalog and per-stage timings."""
    if inputs:
        raise BadInputError(f"demo takes no inputs, got {sorted(inputs)}", fix="call demo with only --out and options")
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
            params=ChipsParams(
                size=64, sampling="balanced", count=96, block_size=2, val_fraction=0.25, seed=params.seed
            ),
        ),
    )
    train_result = timed(
        "train",
        lambda: train.run(
            inputs={"chips": chips_result.catalog},
            output=join_href(output, "model"),
            params=TrainParams(
                encoder="resnet18", epochs=params.epochs, batch_size=8, lr=2e-3, pretrained=False,
                baseline="lightgbm", seed=params.seed,
            ),
        ),
    )  # fmt: skip
    for line in iou_table(train_result):
        log.info("%s", line)
    log.info(
        "demo outputs under %s: synthetic catalog (%d acquisitions), cube %s frames, features %d dates x %d channels "
        "(%d frames kept, %d dropped as cloudy), chips %d train / %d validation",
        output,
        len(synth_result.items),
        cube_result.extra["shape"],
        features_result.extra["dates"],
        len(features_result.extra["channels"]),
        features_result.extra["frames_kept"],
        features_result.extra["frames_dropped"],
        chips_result.extra["train"],
        chips_result.extra["validation"],
    )
    return StageResult(
        stage=STAGE,
        catalog=train_result.catalog,
        items=train_result.items,
        extra={"stages": {name: result.to_dict() for name, result in results.items()}, "timings_s": timings},
    )

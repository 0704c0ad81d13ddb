"""`deep-lulc demo`: run every stage that exists on the synthetic catalog and summarise what it did."""

from __future__ import annotations

import datetime as dt
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

STAGE = "demo"
log = logging.getLogger(__name__)


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
        catalog=chips_result.catalog,
        items=chips_result.items,
        extra={"stages": {name: result.to_dict() for name, result in results.items()}, "timings_s": timings},
    )

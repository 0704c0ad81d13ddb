"""`deep-lulc demo`: run every stage that exists on the synthetic catalog and summarise what it did."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from deep_lulc.shared.contract import StageResult
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.storage import join_href
from deep_lulc.stages.demo.params import DemoParams
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams

STAGE = "demo"
log = logging.getLogger(__name__)


def run(*, inputs: Mapping[str, str], output: str, params: DemoParams) -> StageResult:
    """Chain the stages into sub-folders of `output`; returns the last catalog and per-stage timings."""
    if inputs:
        raise BadInputError(f"demo takes no inputs, got {sorted(inputs)}", fix="call demo with only --out and options")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    synth_result = synth.run(
        inputs={},
        output=join_href(output, "synth"),
        params=SynthParams(seed=params.seed, size=params.size, dates=params.dates),
    )
    timings["synth"] = round(time.perf_counter() - started, 2)
    log.info("synth: %d acquisitions in %.1f s -> %s", len(synth_result.items), timings["synth"], synth_result.catalog)
    log.info(
        "demo outputs: catalog %s, labels %s, AOIs %s and %s (%d of %d dates >= 99%% clear)",
        synth_result.catalog,
        synth_result.extra["labels"],
        synth_result.extra["aoi_train"],
        synth_result.extra["aoi_predict"],
        synth_result.extra["clear_dates"],
        len(synth_result.items),
    )
    return StageResult(
        stage=STAGE,
        catalog=synth_result.catalog,
        items=synth_result.items,
        extra={"stages": {"synth": synth_result.to_dict()}, "timings_s": timings},
    )

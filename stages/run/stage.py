"""`deep-lulc run`: one config, argo/pipeline.yaml's DAG on this machine.

Not `@idempotent` as a whole: an edited config must redo exactly the steps it changes, so reruns are decided
step by step (each step's record, then the stage's own), which also resumes a run that stopped halfway.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.stage.contract import StageResult, typed_inputs
from deep_lulc.stages.run.config import RunConfig, load_config
from deep_lulc.stages.run.engine import Outcome
from deep_lulc.stages.run.params import RunInputs, RunParams
from deep_lulc.stages.run.runner import Runner

STAGE = "run"
log = logging.getLogger(__name__)


def overrides_of(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`chips.count=48` as {"chips.count": 48}: each value read as YAML, as in the file."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        values[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return values


def output_root(config: RunConfig, output: str) -> str:
    root = output or config.output
    if not root:
        raise BadInputError(
            "the run config names no `output` and no --out was given", fix="add output: DIR or pass --out"
        )
    return root.rstrip("/") if "://" in root else str(Path(root).resolve())


def catalog_of(steps: dict[str, Outcome], path: str) -> str | None:
    outcome = steps.get(path)
    return None if outcome is None else outcome.outputs.get("catalog")


@typed_inputs
def run(*, inputs: RunInputs, output: str, params: RunParams) -> StageResult:
    """Validate the config, run every step (reusing finished ones) and return the products' catalogs."""
    config = load_config(inputs.config[0], overrides=overrides_of(params.override))
    root = output_root(config, output)
    if params.dry_run:  # the manifests are read (and checked against the config), nothing runs
        parameters = Runner(config, root, jobs=params.jobs).parameters
        print(json.dumps(parameters, indent=1), file=sys.stderr)
        return StageResult(stage=STAGE, catalog="", items=(), extra={"parameters": parameters, "steps": {}})
    with Runner(config, root, jobs=params.jobs) as runner:
        steps = runner.run()
    products = {
        name: catalog
        for name, path in (
            ("model", "train"),
            ("before", "map-before/merge"),
            ("after", "map-after/merge"),
            ("change", "change"),
            ("evaluation_before", "evaluate-before"),
            ("evaluation_after", "evaluate-after"),
            ("evaluation_change", "evaluate-change"),
        )
        if (catalog := catalog_of(steps, path)) is not None
    }
    reused = sorted(path for path, outcome in steps.items() if outcome.reused)
    change = steps["change"].result or {}
    return StageResult(
        stage=STAGE,
        catalog=products["change"],
        items=tuple(change.get("items", ())),
        extra={
            "run": runner.folder,
            "products": products,
            "steps": len(steps),
            "reused": reused,
            "seconds": {path: outcome.seconds for path, outcome in steps.items() if outcome.seconds is not None},
        },
    )

"""Where the runner's pieces come from and go: the packaged manifests and configs, the `deep-lulc` command its
steps run, and the per-step records that let a rerun reuse what finished."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deep_lulc.shared.errors import BadInputError, DeepLulcError, NothingToDoError, TransientError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.storage import join_href
from deep_lulc.stages.run.engine import Launcher, Outcome, Step, StepFailedError, Workflow

log = logging.getLogger(__name__)
LIBRARY_NAME = "deep-lulc"  # the WorkflowTemplate the pipeline's templateRefs name
STATE_FOLDER = ".deep-lulc-run"  # under <output-root>/<name>/: one record per finished step


def manifest(name: str) -> dict[str, Any]:
    """An Argo manifest shipped in the package (argo/ in the source tree, `deep_lulc.argo` when installed)."""
    document: dict[str, Any] = yaml.safe_load(resources.files("deep_lulc.argo").joinpath(name).read_text("utf-8"))
    return document


def packaged_config(name: str) -> str:
    """The text of a config shipped in the package (configs/ in the source tree)."""
    return resources.files("deep_lulc.configs").joinpath(name).read_text("utf-8")


def deep_lulc_command() -> list[str]:
    """The `deep-lulc` of this installation: the script beside the interpreter (a venv's bin/), else on the
    PATH, else the module itself."""
    beside = Path(sys.executable).parent / "deep-lulc"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("deep-lulc")
    if found:
        return [found]
    return [sys.executable, "-m", "deep_lulc.stages.cli"]


def pipeline(launch: Launcher, *, jobs: int, name: str) -> Workflow:
    """argo/pipeline.yaml with its WorkflowTemplate, ready to run with `launch` per container step."""
    return Workflow(
        workflow=manifest("pipeline.yaml"),
        library={LIBRARY_NAME: manifest("workflowtemplate.yaml")},
        launch=launch,
        jobs=jobs,
        workflow_name=name,
    )


def _exists(href: str | None) -> bool:
    if not href:
        return False
    filesystem, path = storage.filesystem_for(href)
    return bool(filesystem.exists(path))


def resuming(launch: Launcher, state: str) -> Launcher:
    """`launch` that first looks for the step's record under `state`: the same arguments with their output
    still there is a finished step, reused without starting a process. The stages' own rerun records back
    this up: a step killed after publishing but before its record is a quick no-op when started again."""

    def run(step: Step) -> Outcome:
        key = hashlib.sha256(json.dumps(step.arguments).encode()).hexdigest()[:24]
        href = join_href(state, f"{key}.json")
        if _exists(href):
            record = storage.read_json(href, what="run step record")
            outputs = record.get("outputs", {})
            # every template's first output parameter is its product's href (catalog; plan-tiles' tiles-file)
            product = next(iter(outputs.values()), None)
            if record.get("arguments") == list(step.arguments) and _exists(product):
                log.info("step %s (%s): finished in an earlier run, reused", step.path, step.stage)
                return Outcome(dict(outputs), record.get("result"), reused=True, seconds=0.0)
        started = time.perf_counter()
        log.info("step %s (%s): started", step.path, step.stage)
        outcome = launch(step)
        seconds = round(time.perf_counter() - started, 2)
        record = {"path": step.path, "arguments": list(step.arguments), "outputs": outcome.outputs}
        record |= {"result": outcome.result, "seconds": seconds}
        write_file_atomically(href, (json.dumps(record, indent=1) + "\n").encode())
        log.info("step %s (%s): done in %.1f s", step.path, step.stage, seconds)
        return Outcome(outcome.outputs, outcome.result, reused=False, seconds=seconds)

    return run


def error_of(failure: StepFailedError) -> DeepLulcError:
    """The run's error for a failed step, with the step's exit class: bad input stays bad input, a transient
    failure stays retryable."""
    problem = f"step {failure.step.path} ({failure.step.stage}) exited {failure.code}: {failure.last_line}"
    fix = "fix what it names, then run the same command again: finished steps are reused"
    if failure.code == BadInputError.exit_code:
        return BadInputError(problem, fix=fix)
    if failure.code == NothingToDoError.exit_code:
        return NothingToDoError(problem, fix="widen the period or the AOI named in the config, then rerun")
    if failure.code == TransientError.exit_code:
        return TransientError(problem, fix="run the same command again later: finished steps are reused")
    return DeepLulcError(problem, fix=fix)

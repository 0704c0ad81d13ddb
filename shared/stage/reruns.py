"""Idempotent reruns: a stage asked again for what its output already holds does nothing.

After a successful run the stage records `result.json` beside its `catalog.json`: the request (stage,
version, inputs, params as given) and the result line. A rerun with the same request finds both, checks
the catalog is still there, and returns the recorded result without touching anything; `--overwrite`
forces the work. The record is written after publication, so a run killed before it simply runs again.

Stages whose output is one file rather than a catalog folder (`search`'s ItemCollection, `plan-tiles`'
tiles.json, whose paths Argo passes on) keep the same record in `<file>.run.json` beside it, which is also
their provenance: stage, version, inputs and resolved params, like a folder's params.json.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from deep_lulc.shared.errors import DeepLulcError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import CATALOG_NAME, check_output_path, write_file_atomically
from deep_lulc.shared.stage.contract import (
    CallableStage,
    StageInputs,
    StageParams,
    StageResult,
    StageRun,
    inputs_model,
)
from deep_lulc.shared.version import __version__

RESULT_NAME = "result.json"
FILE_RECORD_SUFFIX = ".run.json"
OUTPUT_PLACEHOLDER = "{deep-lulc:output}"
log = logging.getLogger(__name__)
P = TypeVar("P", bound=StageParams)
InputsT = TypeVar("InputsT", bound=StageInputs)


def request_document(stage: str, inputs: StageInputs, params: StageParams) -> dict[str, Any]:
    return {
        "stage": stage,
        "version": __version__,
        "inputs": {name: storage.redact(href) for name, href in sorted(inputs.hrefs().items())},
        "params": params.model_dump(mode="json", exclude={"overwrite"}),
    }


def _escaped(output: str) -> str:
    """The output prefix as it appears inside JSON strings."""
    return json.dumps(storage.redact(storage.normalize_href(output)).rstrip("/"))[1:-1]


def _exists(href: str) -> bool:
    try:
        fs, path = storage.filesystem_for(href)
        return bool(fs.exists(path))
    except (OSError, DeepLulcError):
        return False


def _record_of(output: str, *, file_output: bool) -> tuple[str, str]:
    """(record href, href whose presence proves the output complete)."""
    if file_output:
        return output.rstrip("/") + FILE_RECORD_SUFFIX, output
    return storage.join_href(output, RESULT_NAME), storage.join_href(output, CATALOG_NAME)


def completed_run(output: str, request: Mapping[str, Any], *, file_output: bool = False) -> StageResult | None:
    """The recorded result when `output` holds a complete run of exactly `request`."""
    record_href, product_href = _record_of(output, file_output=file_output)
    if not _exists(record_href) or not _exists(product_href):
        return None
    try:
        text = storage.read_bytes(record_href, what="previous result").decode("utf-8")
        record = json.loads(text.replace(OUTPUT_PLACEHOLDER, _escaped(output)))
    except (DeepLulcError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("request") != request:
        return None
    line = dict(record["result"])
    return StageResult(
        stage=str(line.pop("stage")),
        catalog=str(line.pop("catalog")),
        items=tuple(line.pop("items")),
        extra={key: value for key, value in line.items() if key != "version"},
    )


def _forget(output: str, *, file_output: bool) -> None:
    href = _record_of(output, file_output=file_output)[0]
    if _exists(href):
        fs, path = storage.filesystem_for(href)
        fs.rm(path)


def idempotent(stage: str, *, file_output: bool = False) -> Callable[[StageRun[InputsT, P]], CallableStage[P]]:
    """Wrap a stage's `run` so that repeating a completed request is a no-op returning the same result;
    `file_output`: the output is one file, recorded in `<file>.run.json`. `run` receives its typed Inputs
    model (`typed_inputs`)."""

    def decorate(run: StageRun[InputsT, P]) -> CallableStage[P]:
        model = inputs_model(run)

        @functools.wraps(run)
        def wrapper(*, inputs: StageInputs | Mapping[str, str], output: str, params: P) -> StageResult:
            given = model.of(inputs)
            check_output_path(output, file_output=file_output)
            request = request_document(stage, given, params)
            if not getattr(params, "overwrite", False):
                previous = completed_run(output, request, file_output=file_output)
                if previous is not None:
                    log.info(
                        "%s already holds this %s run (same inputs and params): nothing to do; --overwrite redoes it",
                        storage.redact(output),
                        stage,
                    )
                    return previous
            # a run killed after publishing must not leave an older request's record behind
            _forget(output, file_output=file_output)
            result = run(inputs=given, output=output, params=params)  # type: ignore[arg-type]
            record = json.dumps({"request": request, "result": result.to_dict()})
            # location-free, so identical runs in two folders write identical bytes and a moved folder still matches
            record = record.replace(_escaped(output), OUTPUT_PLACEHOLDER)
            write_file_atomically(_record_of(output, file_output=file_output)[0], (record + "\n").encode())
            return result

        return wrapper

    return decorate

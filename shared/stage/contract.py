"""The stage contract: a params model per stage, a result that prints as one JSON line, params.json.

Each stage module exposes `run(*, inputs, output, params) -> StageResult`; tests call it directly and the
CLI only parses options into the params model (validated before any I/O).
"""

from __future__ import annotations

import functools
import inspect
import json
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, TypeVar
from urllib.parse import urlsplit

import pystac
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import StagedOutput
from deep_lulc.shared.io.stac import (
    ONE_FOLDER_LAYOUT,
    save_self_contained,
    set_nominal_datetime,
    single_item_collection,
)
from deep_lulc.shared.io.storage import redact
from deep_lulc.shared.version import __version__

PARAMS_NAME = "params.json"


class StageParams(BaseModel):
    """Base for every stage's params: unknown keys are errors, values are immutable once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    overwrite: bool = Field(
        False, description="Redo the work even when --out already holds this exact run (default: a no-op)."
    )


def unset_when_blank(*fields: str, auto: bool = False) -> Any:
    """A before-validator making "" (and with `auto`, the word "auto") None, the stage's own default, for
    `fields` of a params model: Argo passes every workflow parameter, empty where the default holds, and so
    does a run config that maps onto them."""
    unset = ("", "auto") if auto else ("",)

    def blank_is_default(value: object) -> object:
        return None if isinstance(value, str) and value in unset else value

    return field_validator(*fields, mode="before")(blank_is_default)


class StageInputs(BaseModel):
    """Base for every stage's inputs: the hrefs it reads, one field each (`--name` on the command line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def hrefs(self) -> dict[str, str]:
        """The given inputs by name (absent optional ones left out), as params.json and rerun records keep them."""
        return {name: value for name, value in self.model_dump().items() if value is not None}

    @classmethod
    def of(cls, given: StageInputs | Mapping[str, str]) -> Self:
        """`given` as this model: a mapping (as tests and the demo pass) is validated exactly as the command
        line's options are, so a missing or misspelt input is the same one-line bad input everywhere."""
        if isinstance(given, cls):
            return given
        raw = given.hrefs() if isinstance(given, StageInputs) else dict(given)
        return validate_params(cls, raw)


class NoInputs(StageInputs):
    """A stage that reads nothing (synth, demo)."""


I_contra = TypeVar("I_contra", bound=StageInputs, contravariant=True)
P_contra = TypeVar("P_contra", bound=StageParams, contravariant=True)


class StageRun(Protocol[I_contra, P_contra]):
    """A stage's `run` as written: it receives its typed Inputs model."""

    def __call__(self, *, inputs: I_contra, output: str, params: P_contra) -> StageResult: ...


class CallableStage(Protocol[P_contra]):
    """A stage's `run` as callers see it: the Inputs model, or a mapping of hrefs validated into it."""

    def __call__(self, *, inputs: StageInputs | Mapping[str, str], output: str, params: P_contra) -> StageResult: ...


def inputs_model(run: Callable[..., StageResult]) -> type[StageInputs]:
    """The Inputs model `run` declares (its `inputs` annotation), so the model is stated once, in the signature."""
    model = inspect.get_annotations(run, eval_str=True).get("inputs")
    if not (isinstance(model, type) and issubclass(model, StageInputs)):
        raise TypeError(f"{run.__qualname__}: annotate `inputs` with the stage's StageInputs model")
    return model


def typed_inputs(run: StageRun[I_contra, P_contra]) -> CallableStage[P_contra]:
    """Hand `run` its typed Inputs model whatever the caller passed (the runtime passes the model, tests and
    the demo may pass a mapping)."""
    model = inputs_model(run)

    @functools.wraps(run)
    def wrapper(*, inputs: StageInputs | Mapping[str, str], output: str, params: P_contra) -> StageResult:
        return run(inputs=model.of(inputs), output=output, params=params)  # type: ignore[arg-type]

    return wrapper


P = TypeVar("P", bound=StageParams)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class StageResult:
    stage: str
    catalog: str
    items: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of_item(cls, stage: str, catalog: str, item_id: str, extra: Mapping[str, Any]) -> StageResult:
        """The result of a stage publishing one item (every stage but synth and chips)."""
        return cls(stage=stage, catalog=catalog, items=(item_id,), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "version": __version__,
            "catalog": redact(self.catalog),
            "items": list(self.items),
            **self.extra,
        }

    def to_json_line(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False, separators=(",", ":"))


def messages_by_key(
    errors: Iterable[Mapping[str, Any]], describe: Callable[[Mapping[str, Any]], tuple[str, str]]
) -> dict[str, list[str]]:
    """pydantic's errors as the distinct messages of each key (`describe`: an error's key and message, "" for
    none). A value that fails every member of a union (`int | "auto"`) gets one error per member, which a
    reader wants as one line, "... or ...", about one option, not as sub-options named after the members."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        key, text = describe(error)
        texts = grouped.setdefault(key, [])
        if text and text not in texts:
            texts.append(text)
    return grouped


def _option_of(error: Mapping[str, Any]) -> str:
    """The option a params error is about: params models are flat, so the location's first part."""
    return "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "--params"


def validate_params(model: type[M], values: Mapping[str, Any]) -> M:
    """Build a params model, turning pydantic's report into one actionable line naming the option."""
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        errors = exc.errors()
        given = {_option_of(error): error.get("input") for error in errors}
        messages = messages_by_key(errors, lambda error: (_option_of(error), str(error["msg"])))
        problems = [f"{key}: {' or '.join(texts)} (got {given[key]!r})" for key, texts in messages.items()]
        what = "inputs" if issubclass(model, StageInputs) else "parameters"
        raise BadInputError(f"invalid {what}: " + "; ".join(problems), fix="correct the option values") from exc


def write_params_file(
    directory: Path, *, stage: str, inputs: StageInputs | Mapping[str, str], params: StageParams
) -> Path:
    """Save the resolved params beside the output, so any result can be traced back to how it was made."""
    given = inputs.hrefs() if isinstance(inputs, StageInputs) else inputs
    document = {
        "stage": stage,
        "version": __version__,
        "inputs": {name: redact(href) for name, href in given.items()},
        "params": params.model_dump(mode="json", exclude={"overwrite"}),
    }
    path = directory / PARAMS_NAME
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


def finish_single_item_output(
    staged: StagedOutput,
    item: pystac.Item,
    *,
    catalog_id: str,
    description: str,
    stage: str,
    inputs: StageInputs | Mapping[str, str],
    params: StageParams,
) -> str:
    """Wrap `item` in a self-contained catalog with params.json, publish the staging folder, return the
    catalog href (the tail every single-item stage shares).

    The catalog holds one collection of the same id (`collection.json` beside `catalog.json`) holding the
    item, which gets its `collection` field and a `datetime` (`set_nominal_datetime`): the output loads into
    a STAC API as it is, and every item stays at `<id>/<id>.json`.
    """
    return finish_items_output(
        staged, [item], catalog_id=catalog_id, description=description, stage=stage, inputs=inputs, params=params
    )


def relative_provenance(item: pystac.Item, *, item_folder: str) -> None:
    """Point `derived_from` links at sources beside the output relatively, so a catalog served over HTTP or
    moved with its neighbours still resolves them (absolute file paths mean nothing to a browser)."""
    target = urlsplit(item_folder)
    for link in item.links:
        if link.rel != "derived_from" or not isinstance(link.target, str):
            continue
        source = urlsplit(link.target)
        same_place = (source.scheme, source.netloc) == (target.scheme, target.netloc) or (
            storage.scheme_of(link.target) == "file" and storage.scheme_of(item_folder) == "file"
        )
        if same_place and source.path.startswith("/") and target.path.startswith("/"):
            link.target = posixpath.relpath(source.path, target.path)


def write_outputs_dir(result: StageResult, directory: Path) -> None:
    """`result.json` plus one file per top-level key, for Argo `outputs.parameters` (valueFrom.path)."""
    directory.mkdir(parents=True, exist_ok=True)
    document = result.to_dict()
    (directory / "result.json").write_text(json.dumps(document) + "\n", encoding="utf-8")
    for key, value in document.items():
        text = value if isinstance(value, str) else json.dumps(value)
        (directory / key).write_text(text, encoding="utf-8")


def finish_items_output(
    staged: StagedOutput,
    items: list[pystac.Item],
    *,
    catalog_id: str,
    description: str,
    stage: str,
    inputs: StageInputs | Mapping[str, str],
    params: StageParams,
) -> str:
    """`finish_single_item_output` for a stage publishing several items (a series of change maps): one
    collection of id `catalog_id` holds them all, its extent covering every item's footprint and period, and
    each item stays at `<id>/<id>.json`."""
    for item in items:
        set_nominal_datetime(item)
        relative_provenance(item, item_folder=storage.join_href(staged.output, item.id))
    collection = single_item_collection(items[0], collection_id=catalog_id, description=description)
    if len(items) > 1:
        collection.extent = pystac.Extent.from_items(items)
    for item in items:
        collection.add_item(item)
    catalog = pystac.Catalog(id=catalog_id, description=description, title=description)
    catalog.add_child(collection)
    save_self_contained(catalog, staged.path, layout=ONE_FOLDER_LAYOUT)
    write_params_file(staged.path, stage=stage, inputs=inputs, params=params)
    href: str = staged.publish()
    return href

"""The run config: one YAML file naming what `argo/pipeline.yaml`'s parameters name, checked before anything runs.

Every key maps onto one workflow parameter (`ARGO_PARAMETERS`), so a config and an `argo submit -p ...` say the
same thing; the workflow parameters a config has no key for are the cluster's (images, nodes, secrets), listed
with the reason in `NOT_IN_CONFIG`. tests/stages/test_run.py keeps the two in step with the manifests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.stage.contract import messages_by_key


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Section):
    url: str = Field("https://earth-search.aws.element84.com/v1", min_length=1, description="STAC API or catalog.")
    collection: str = Field("sentinel-2-l2a", min_length=1, description="Sentinel-2 L2A collection id.")


class Training(_Section):
    aoi: str = Field(min_length=1, description="Training AOI (GeoJSON, GeoPackage, ...).")
    start: dt.date
    end: dt.date
    labels: str = Field(min_length=1, description="Labelled polygons of the training AOI and period.")


class Period(_Section):
    start: dt.date
    end: dt.date
    labels: str | None = Field(None, description="Labels of the prediction AOI in this period, to score the map.")


class Prediction(_Section):
    aoi: str = Field(min_length=1, description="The AOI to map.")
    before: Period
    after: Period
    tile_size: int = Field(2048, ge=16, le=65536, description="Edge of each predicted tile in pixels.")


class Classes(_Section):
    scheme: str | None = Field(None, description="Class scheme file (YAML/JSON); default: the Slovenia scheme.")
    column: str = Field("lulc", min_length=1, description="Attribute of the labels holding the class codes.")
    map: str | None = Field(None, description="File mapping the labels' codes or names onto the scheme.")


class Model(_Section):
    architecture: Literal["temporal-pixel", "temporal-unet", "lightgbm", "unet"] = "temporal-pixel"
    encoder: str | None = None
    epochs: int = Field(30, ge=1, le=1000)
    pretrained: bool = False
    lr: float | Literal["auto"] | None = None


class Chips(_Section):
    # size, count and block_size also take "auto": chosen for the training AOI, as `deep-lulc chips` does
    size: Annotated[int, Field(ge=16, le=2048)] | Literal["auto"] = 128
    count: Annotated[int, Field(ge=1, le=1_000_000)] | Literal["auto"] = 1000
    sampling: Literal["random", "grid", "balanced"] = "balanced"
    block_size: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = 4
    val_fraction: float = Field(0.2, ge=0.0, le=0.9)
    min_labelled: float = Field(0.5, ge=0.0, le=1.0)


class RunConfig(_Section):
    """A whole run of the pipeline. Relative paths are relative to the config file's folder."""

    name: str = Field(
        "deep-lulc",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="The run's name (Argo's workflow name): outputs go under <output>/<name>/.",
    )
    output: str | None = Field(None, description="Output root, a folder or s3:// prefix (Argo's output-root).")
    stac: Source = Source()
    train: Training
    predict: Prediction
    classes: Classes = Classes()
    model: Model = Model()
    chips: Chips = Chips()
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Device of train and predict.")

    @model_validator(mode="after")
    def _periods_in_order(self) -> RunConfig:
        for where, start, end in (
            ("train", self.train.start, self.train.end),
            ("predict.before", self.predict.before.start, self.predict.before.end),
            ("predict.after", self.predict.after.start, self.predict.after.end),
        ):
            if end < start:
                raise ValueError(f"{where}: end {end} is before start {start}")
        return self


# config key (dotted) -> workflow parameter of argo/pipeline.yaml
ARGO_PARAMETERS: dict[str, str] = {
    "output": "output-root",
    "stac.url": "stac",
    "stac.collection": "collection",
    "train.aoi": "aoi-train",
    "train.start": "train-start",
    "train.end": "train-end",
    "train.labels": "labels",
    "predict.aoi": "aoi-predict",
    "predict.tile_size": "tile-size",
    "predict.before.start": "before-start",
    "predict.before.end": "before-end",
    "predict.before.labels": "labels-before",
    "predict.after.start": "after-start",
    "predict.after.end": "after-end",
    "predict.after.labels": "labels-after",
    "classes.scheme": "classes",
    "classes.column": "class-column",
    "classes.map": "class-map",
    "model.architecture": "architecture",
    "model.encoder": "encoder",
    "model.epochs": "epochs",
    "model.pretrained": "pretrained",
    "model.lr": "lr",
    "chips.size": "chip-size",
    "chips.count": "chip-count",
    "chips.sampling": "chip-sampling",
    "chips.block_size": "chip-block-size",
    "chips.val_fraction": "chip-val-fraction",
    "chips.min_labelled": "chip-min-labelled",
    "device": "gpu-device",
}
# config keys that are Argo's but no workflow parameter
ARGO_FIELDS = {"name": "the Workflow's name, {{workflow.name}} (argo submit --name)"}
# workflow parameters with no config key, and why
_CLUSTER = "the runner runs the installed deep-lulc on this machine: no container images, node pools, "
NOT_IN_CONFIG: dict[str, str] = {
    "cpu-image": _CLUSTER + "images",
    "gpu-image": _CLUSTER + "images",
    "gpu-node-key": _CLUSTER + "node selectors",
    "gpu-node-value": _CLUSTER + "node selectors",
    "s3-secret": _CLUSTER + "Kubernetes Secrets: credentials come from the usual AWS environment variables",
    "service-account": _CLUSTER + "service accounts",
    "image-pull-policy": _CLUSTER + "image pulls",
}
# parameters whose config default differs from the workflow's, and why
DEFAULTS_DIFFER: dict[str, str] = {
    "gpu-device": "one machine may have no GPU: auto takes CUDA where present (the cluster's GPU pool always has one)",
}
PATH_KEYS = (
    "output",
    "stac.url",
    "train.aoi",
    "train.labels",
    "predict.aoi",
    "predict.before.labels",
    "predict.after.labels",
    "classes.scheme",
    "classes.map",
)


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested sections as dotted keys (`predict.before.start`)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def argo_value(key: str, value: Any) -> str:
    """A config value as the workflow parameter's string: flags as the option itself, None as ''."""
    if key == "model.pretrained":
        return "--pretrained" if value else "--no-pretrained"
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def workflow_parameters(config: RunConfig) -> dict[str, str]:
    """The config as `argo submit -p` parameters."""
    flat = flatten(config.model_dump())
    return {parameter: argo_value(key, flat[key]) for key, parameter in ARGO_PARAMETERS.items()}


def _resolve(value: str | None, base: str) -> str | None:
    """A relative path against `base` (a folder or URL prefix); URLs and absolute paths as they are."""
    if value is None or "://" in value or Path(value).is_absolute():
        return value
    if "://" in base:
        return join_href(base, value)
    return str((Path(base) / value).resolve())


def resolve_paths(config: RunConfig, base: str) -> RunConfig:
    """The config with its relative paths made relative to `base`, the folder the config speaks from."""
    resolved = config.model_dump()
    flat = flatten(resolved)
    for key in PATH_KEYS:
        _set(resolved, key, _resolve(flat[key], base))
    return RunConfig.model_validate(resolved)


def _set(document: dict[str, Any], key: str, value: Any) -> None:
    *sections, last = key.split(".")
    for section in sections:
        document = document.setdefault(section, {})
    document[last] = value


def _key(location: tuple[int | str, ...]) -> str:
    """The dotted config key of an error: pydantic appends the union member it tried (`int | "auto"`) to the
    location, which is no key, so the location is followed only through the config's own fields."""
    model: Any = RunConfig
    parts: list[str] = []
    for part in location:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        parts.append(str(part))
        field = model.model_fields.get(str(part))
        model = field.annotation if field is not None else None
    return ".".join(parts) or "config"


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    where = _key(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"unknown key {where}", ""
    if error["type"] == "missing":
        return f"missing key {where}", ""
    return where, str(error["msg"]).removeprefix("Value error, ")


def parse_config(document: Any, *, source: str) -> RunConfig:
    """Validate a loaded YAML document; every problem is one line naming the key."""
    if not isinstance(document, dict):
        raise BadInputError(f"run config {source} is not a mapping of keys", fix="write key: value lines (YAML)")
    try:
        return RunConfig.model_validate(document)
    except ValidationError as exc:
        messages = messages_by_key(exc.errors(), _describe)
        problems = "; ".join(f"{where}: {' or '.join(texts)}" if texts else where for where, texts in messages.items())
        raise BadInputError(
            f"run config {source}: {problems}",
            fix="see the commented example configs (configs/*.yaml) and docs/cli.md#deep-lulc-run",
        ) from None


def read_config(text: str, *, source: str, overrides: dict[str, Any] | None = None) -> RunConfig:
    """A config's text, validated, its relative paths left as they are; `overrides` (dotted keys) replace
    values before validation."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise BadInputError(f"run config {source} is not valid YAML: {detail}", fix="fix the file's syntax") from None
    if isinstance(document, dict):
        for key, value in (overrides or {}).items():
            _set(document, key, value)
    return parse_config(document, source=source)


def load_config(path: str, *, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The config file, validated, with relative paths resolved against its folder."""
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"run config not found: {path}", fix="pass an existing YAML file")
    config = read_config(file.read_text(encoding="utf-8"), source=path, overrides=overrides)
    return resolve_paths(config, str(file.resolve().parent))

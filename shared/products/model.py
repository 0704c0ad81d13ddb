"""The trained model: a STAC item with the Machine Learning Model (MLM) extension 1.5.2 (the only place that
knows MLM fields), and read back for `predict`.

pystac's MLM classes write the fields but target MLM 1.4; the item declares 1.5.2, whose schema the fields
here satisfy: the input's `dim_order` names its `bands` dimension, the output's (classes, no bands) does not,
and the item carries the recommended source-code and container assets, so a generic MLM consumer learns the
inputs, their z-score normalisation, the classes and how to run the model from the item alone.

The writer records the size and SHA-256 (file extension) of every file asset. The weights are opaque
numbers, so they are checked against that record on read: a weights file cut short in a copy is bad input
naming it, never a LightGBM model missing half its trees. The config is checked by its content
(`ModelConfig.from_json`, then against the features and the weights); its record says "truncated" when it
does not parse, and a config edited by hand is used as it is, with a warning.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pystac
import torch
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.mlm import (
    AcceleratorType,
    AssetGeneralMLMExtension,
    Hyperparameters,
    InputStructure,
    MLMExtension,
    ModelInput,
    ModelOutput,
    ResultStructure,
    TaskType,
    ValueScaling,
    ValueScalingType,
)
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from shapely.geometry import box, mapping

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.integrity import SHA2_256, file_checksum
from deep_lulc.shared.io.stac import items_of, period_item, read_stac, stac_id, stamp_provenance
from deep_lulc.shared.lulc.classes import ClassScheme, LulcClass
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.version import SOFTWARE_NAME, __version__, source_url, wheel_name

__all__ = [
    "CONFIG",
    "CONFIG_NAME",
    "CONTAINER",
    "LIGHTGBM_MEDIA_TYPE",
    "MLM_SCHEMA",
    "SAFETENSORS_MEDIA_TYPE",
    "SOURCE_CODE",
    "WEIGHTS",
    "AssetSpec",
    "ModelFolder",
    "ModelProduct",
    "inference_image",
    "looks_pickled",
    "model_item",
    "read_model",
]

WEIGHTS, CONFIG = "weights", "config"  # asset keys: the model artifact and its JSON config
CONFIG_NAME = "model-config.json"
SAFETENSORS_MEDIA_TYPE = "application/octet-stream; application=safetensors"
LIGHTGBM_MEDIA_TYPE = "text/plain; application=lightgbm"
MLM_SCHEMA = "https://stac-extensions.github.io/mlm/v1.5.2/schema.json"
# MLM 1.5.2: an input listing bands names a `bands` dimension; an output without bands must not.
INPUT_DIMENSIONS = ["batch", "bands", "height", "width"]
OUTPUT_DIMENSIONS = ["batch", "class", "height", "width"]
SOURCE_CODE, CONTAINER = "source_code", "container"  # the MLM recommended asset keys
ENTRYPOINT = "deep_lulc.stages.predict.stage:run"  # `deep-lulc predict --model ITEM --features ... --out ...`
INFERENCE_IMAGE = "ghcr.io/deep-lulc/deep-lulc:gpu"  # argo/workflowtemplate.yaml's gpu-image, where predict runs
IMAGE_VARIABLE = "DEEP_LULC_IMAGE"  # a deployment's own image reference (registry, tag or digest)
OCI_INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
FIX_MODEL = "pass the catalog.json written by `deep-lulc train`"
FIX_DAMAGED = "copy the whole model folder again, or retrain with `deep-lulc train`"
AssetSpec = tuple[Path, str, str, list[str]]  # path, media type, title, roles
_WEIGHTS_ROLES = ["mlm:model", "mlm:weights", "data"]
_ARCHITECTURE = "deep-lulc:architecture"
_VALIDATION = "deep-lulc:validation"
_CLASSES = "classification:classes"
_OUTPUT = "mlm:output"


def model_id(name: str, *, config: str, training: str) -> str:
    """`model-<name>-<digest>`: what was trained, and a digest of its config (inputs, normalisation from the
    chips, classes) and of how it was trained (`training`: the params), so two models never share an id, nor
    do their predictions (`class_map.prediction_id`)."""
    digest = hashlib.sha256(f"{config}\n{training}".encode()).hexdigest()[:8]
    return stac_id("model", name, digest)


def model_item(
    identifier: str,
    *,
    config: ModelConfig,
    scheme: ClassScheme,
    bbox: list[float],
    temporal: tuple[str, str],
    parameters: int,
    pretrained_source: str | None,
    device: torch.device,
    batch_size: int,
    hyperparameters: dict[str, Any],
    assets: dict[str, AssetSpec],
    chips_href: str,
    validation: dict[str, Any] | None = None,
) -> pystac.Item:
    """`assets`: key -> (path, media type, title, roles), files already written; `weights` is the model
    artifact, `config` its ModelConfig JSON."""
    item = period_item(identifier, mapping(box(*bbox)), bbox, (temporal[0], temporal[1]))
    chip = [config.chip_size, config.chip_size]
    model_input = ModelInput.create(
        name=f"features ({config.input_mode})",
        description="Bands and NDVI/NDWI/NDBI"
        + (" for every date, date-major" if config.input_mode == "stack" else " of one date"),
        bands=list(config.channels),
        input=InputStructure.create(
            shape=[-1, config.n_in, *chip], dim_order=INPUT_DIMENSIONS, data_type=DataType.FLOAT32
        ),
    )
    # MLM takes one value scaling per band (a list); pystac 1.15 types the field as a single object.
    model_input.properties["value_scaling"] = [
        ValueScaling.create(type=ValueScalingType.Z_SCORE, mean=m, stddev=s).to_dict()
        for m, s in zip(config.mean, config.std, strict=True)
    ]
    # The outputs the model produces, in order: a generic consumer maps output i to classes[i]['value'].
    by_value = {c["value"]: c for c in scheme.to_classification()}
    outputs = config.output_classes
    model_output = ModelOutput.create(
        name="classes",
        tasks=[TaskType.SEMANTIC_SEGMENTATION],
        result=ResultStructure.create(
            shape=[-1, len(outputs), *chip], dim_order=OUTPUT_DIMENSIONS, data_type=DataType.FLOAT32
        ),
        classes=[Classification(by_value.get(v, _unused_output(v))) for v in outputs],
    )
    MLMExtension.ext(item, add_if_missing=True).apply(
        name=identifier,
        architecture=config.spec.title.format(encoder=config.encoder),
        tasks=[TaskType.SEMANTIC_SEGMENTATION],
        input=[model_input],
        output=[model_output],
        framework=config.spec.framework,
        framework_version=torch.__version__.split("+")[0] if config.is_network else _lightgbm_version(),
        total_parameters=parameters,
        pretrained=pretrained_source is not None,
        pretrained_source=pretrained_source,
        batch_size_suggestion=batch_size,
        accelerator=AcceleratorType.CUDA if device.type == "cuda" else AcceleratorType.AMD64,
        accelerator_constrained=False,
        hyperparameters=Hyperparameters.create(**hyperparameters),
    )
    _declare_mlm_1_5(item)
    ClassificationExtension.add_to(item)  # the output's classification:classes
    # The whole legend, NoData and classes a model never outputs included, for the maps made with it.
    item.properties[_CLASSES] = scheme.to_classification()
    item.properties[_ARCHITECTURE] = config.architecture
    if validation is not None:
        item.properties[_VALIDATION] = validation
    for key, (path, media_type, title, roles) in assets.items():
        asset = pystac.Asset(str(path), title=title, media_type=media_type, roles=roles)
        item.add_asset(key, asset)
        if key == WEIGHTS:
            AssetGeneralMLMExtension.ext(asset, add_if_missing=True).artifact_type = (
                "safetensors" if config.is_network else "lightgbm.Booster.save_model"
            )
            # MLM ties input band names to raster:bands names on the model asset.
            RasterExtension.ext(asset, add_if_missing=True).bands = [
                RasterBand({"name": name, "data_type": DataType.FLOAT32.value}) for name in config.channels
            ]
        data = path.read_bytes()
        record = FileExtension.ext(asset, add_if_missing=True)
        record.size = len(data)
        record.checksum = file_checksum(data)
    item.add_asset(SOURCE_CODE, _source_code_asset())
    item.add_asset(CONTAINER, _container_asset())
    stamp_provenance(item, derived_from=[chips_href])
    return item


@dataclass(frozen=True)
class ModelFolder:
    """The files of one model, named here once: `train` writes them at these paths, and `assets` describes
    what it wrote for `model_item` (the weights with MLM's roles; history and loss where epochs ran)."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def confusion_matrix(self) -> Path:
        return self.path / "confusion_matrix.png"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def loss(self) -> Path:
        return self.path / "loss.png"

    def assets(self, *, weights: str, media_type: str, title: str, history: bool) -> dict[str, AssetSpec]:
        """`weights`: the weights file's name in the folder, `media_type` and `title` its asset's."""
        assets: dict[str, AssetSpec] = {
            WEIGHTS: (self.path / weights, media_type, title, list(_WEIGHTS_ROLES)),
            CONFIG: (self.config, "application/json", "Network and input configuration", ["metadata"]),
            "metrics": (self.metrics, "application/json", "Validation metrics (maps and chips)", ["metadata"]),
            "confusion_matrix": (
                self.confusion_matrix,
                "image/png",
                "Confusion matrix of the validation blocks predicted as maps",
                ["overview", "visual"],
            ),
        }
        if history:
            assets["history"] = (self.history, "text/csv", "Loss and chip mIoU per epoch", ["metadata"])
            assets["loss"] = (self.loss, "image/png", "Loss curves", ["overview", "visual"])
        return assets


def _unused_output(value: int) -> dict[str, Any]:
    """An output channel no class of the scheme has (a gap in its values): named, so the list stays in order."""
    return {"value": value, "name": f"unused-{value}", "description": "no class of the scheme has this value"}


def _declare_mlm_1_5(item: pystac.Item) -> None:
    """Swap the MLM 1.4 URI pystac added for 1.5.2 (pystac's `has_extension` matches any MLM version, so
    its MLM classes still read the item)."""
    item.stac_extensions = [
        MLM_SCHEMA if uri.startswith("https://stac-extensions.github.io/mlm/") else uri for uri in item.stac_extensions
    ]


def inference_image() -> str:
    """The container image `predict` runs in: `DEEP_LULC_IMAGE` where a deployment sets it (its own registry,
    tag or digest), else the Argo templates' default GPU image."""
    return os.environ.get(IMAGE_VARIABLE) or INFERENCE_IMAGE


def _source_code_asset() -> pystac.Asset:
    """The source of this very version, where a user can get it: the project's source URL at the version's
    tag (a package URL such as pkg:pypi/... would name a registry entry that does not exist)."""
    tag = f"v{__version__}"
    return pystac.Asset(
        f"{source_url()}/tree/{quote(tag, safe='')}",
        title=f"{SOFTWARE_NAME} {__version__}: the package that trained this model and runs it",
        description=f"Install this version with `pip install git+{source_url()}@{tag}` (or the wheel "
        f"{wheel_name()} that `make dist` builds from that tag); `deep-lulc predict --model <catalog> --features "
        "<catalog> --out <dir>` runs the model (the entrypoint below), normalising the inputs as `mlm:input` says.",
        roles=["mlm:source_code", "code", "metadata"],
        extra_fields={"mlm:entrypoint": ENTRYPOINT},
    )


def _container_asset() -> pystac.Asset:
    image = inference_image()
    return pystac.Asset(
        image if "://" in image else f"docker://{image}",
        title="Container image that runs the model (`deep-lulc predict ...`)",
        description="The image's entrypoint is `deep-lulc`; its arguments are a stage command line.",
        media_type=OCI_INDEX_MEDIA_TYPE,
        roles=["mlm:container", "runtime"],
    )


def _lightgbm_version() -> str:
    import lightgbm

    return str(lightgbm.__version__)


def looks_pickled(raw: bytes) -> bool:
    """A pickle, or torch.save's zip of pickles: never loaded, refused for what it is."""
    return raw[:1] == b"\x80" or raw[:2] == b"PK"


def _difference(item: pystac.Item, key: str, raw: bytes) -> tuple[str, bool] | None:
    """How `raw` differs from the file the item records under `key` (and whether it is shorter), or None:
    the same file, or an item that records nothing (written before sizes were recorded)."""
    asset = item.assets[key]
    if not FileExtension.has_extension(item):
        return None
    record = FileExtension.ext(asset)
    if record.size is not None and len(raw) != record.size:
        shorter = len(raw) < record.size
        return f"{len(raw)} bytes where the model item records {record.size}", shorter
    if record.checksum is not None and record.checksum.startswith(SHA2_256) and record.checksum != file_checksum(raw):
        return "a SHA-256 other than the model item's file:checksum", False
    return None


@dataclass(frozen=True)
class ModelProduct:
    """A model item and its config: cheap to read (no weights yet), so mismatches are found before loading."""

    item: pystac.Item
    config: ModelConfig

    @property
    def weights_href(self) -> str:
        return self.item.assets[WEIGHTS].get_absolute_href() or ""

    def read_weights(self) -> bytes:
        """The weights file's bytes, as train wrote them. A pickle is not checked: the loader refuses it for
        what it is, which says more than its size."""
        raw = storage.read_bytes(self.weights_href, what="model weights")
        difference = None if looks_pickled(raw) else _difference(self.item, WEIGHTS, raw)
        if difference is not None:
            detail, shorter = difference
            state = "truncated" if shorter else "not the file `deep-lulc train` wrote"
            raise BadInputError(
                f"model weights {storage.redact(self.weights_href)} are {state}: {detail}", fix=FIX_DAMAGED
            )
        return raw

    def class_scheme(self) -> ClassScheme:
        """Class colours come from the MLM output's classification classes; names and values from the config."""
        outputs = self.item.properties.get(_OUTPUT) or [{}]
        classes_out = [*outputs[0].get(_CLASSES, []), *self.item.properties.get(_CLASSES, [])]
        colours = {c["value"]: "#" + str(c.get("color_hint", "808080")) for c in classes_out}
        descriptions = {c["value"]: str(c.get("description") or c["name"]) for c in classes_out}
        config = self.config
        classes = tuple(
            LulcClass(value, name, descriptions.get(value, name), colours.get(value, "#808080"))
            for value, name in zip(config.class_values, config.class_names, strict=True)
        )
        return ClassScheme(classes=classes, nodata=config.nodata)


def read_model(href: str) -> ModelProduct:
    """The first model item at `href` (catalog or item) and its validated config."""
    candidates = [item for item in items_of(read_stac(href)) if {WEIGHTS, CONFIG} <= set(item.assets)]
    if not candidates:
        raise BadInputError(
            f"{storage.redact(href)} holds no model item (assets 'weights' and 'config')", fix=FIX_MODEL
        )
    item = candidates[0]
    config_href = item.assets[CONFIG].get_absolute_href() or ""
    raw = storage.read_bytes(config_href, what="model config")
    difference = _difference(item, CONFIG, raw)
    try:
        config = ModelConfig.from_json(raw.decode("utf-8"))
    except (BadInputError, UnicodeDecodeError) as exc:
        if difference is not None and difference[1]:
            raise BadInputError(
                f"model config {storage.redact(config_href)} is truncated: {difference[0]}", fix=FIX_DAMAGED
            ) from exc
        if isinstance(exc, BadInputError):
            raise
        raise BadInputError(
            f"model config {storage.redact(config_href)} is not UTF-8 text ({exc})", fix=FIX_MODEL
        ) from exc
    if difference is not None:  # a legend or a layer size edited by hand would give a wrong map, not an error
        raise BadInputError(
            f"model config {storage.redact(config_href)} is not the file `deep-lulc train` wrote: {difference[0]}",
            fix=FIX_DAMAGED,
        )
    return ModelProduct(item=item, config=config)

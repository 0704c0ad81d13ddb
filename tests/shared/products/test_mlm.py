"""The model item is valid MLM 1.5.2 (the official schema from the offline bundle, through jsonschema), carries
source-code and container assets and a size and checksum for every file, its files are readable by everyone,
and a generic MLM consumer learns the inputs and their normalisation from the item alone."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pystac
import pytest
import torch
import yaml
from pystac.extensions.mlm import MLMExtension
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.model import (
    CONFIG_NAME,
    CONTAINER,
    MLM_SCHEMA,
    SAFETENSORS_MEDIA_TYPE,
    SOURCE_CODE,
    model_item,
    read_model,
)
from deep_lulc.shared.version import __version__
from deep_lulc.stages.predict.model_loading import load_model
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.params import TrainParams

from ...conftest import PROJECT_ROOT, SCHEMAS, needs_shared

ITEM_SCHEMA = "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json"


@pytest.fixture(scope="module")
def registry() -> Registry:
    """Every schema of the offline bundle under its canonical URL (index.json), so `$ref`s never leave it."""
    needs_shared()
    index = json.loads((SCHEMAS / "index.json").read_text())
    resources = [
        (url, Resource.from_contents(json.loads((SCHEMAS / relative).read_text()), default_specification=DRAFT7))
        for url, relative in index.items()
        if relative.startswith("stac/")
    ]
    return Registry().with_resources(resources)


def schema_errors(document: dict[str, Any], url: str, registry: Registry) -> list[str]:
    """Every error jsonschema finds validating `document` against the bundle's schema `url`."""
    schema = registry.contents(url)
    validator = jsonschema.validators.validator_for(schema)(schema, registry=registry)
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def item_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


def item_json(catalog: str) -> dict[str, Any]:
    return json.loads(Path(item_of(catalog).self_href).read_text())  # type: ignore[no-any-return]


def test_trained_model_is_valid_mlm_1_5_2(tiny_model: str, registry: Registry) -> None:
    document = item_json(tiny_model)
    assert MLM_SCHEMA in document["stac_extensions"]
    assert not [uri for uri in document["stac_extensions"] if "/mlm/" in uri and uri != MLM_SCHEMA]
    for url in [ITEM_SCHEMA, *document["stac_extensions"]]:
        assert schema_errors(document, url, registry) == [], url
    (model_input,) = document["properties"]["mlm:input"]
    assert model_input["input"]["dim_order"] == ["batch", "bands", "height", "width"]
    (output,) = document["properties"]["mlm:output"]
    assert "bands" not in output["result"]["dim_order"]


def test_the_schema_is_really_checked(tiny_model: str, registry: Registry) -> None:
    """The MLM 1.4 shape of the item (bands listed, dim_order without `bands`) is what 1.5.2 refuses."""
    document = item_json(tiny_model)
    document["properties"]["mlm:input"][0]["input"]["dim_order"] = ["batch", "channel", "height", "width"]
    errors = schema_errors(document, MLM_SCHEMA, registry)
    assert errors == [
        "properties/mlm:input/0/input/dim_order: None of ['batch', 'channel', 'height', 'width'] are "
        "valid under the given schema"
    ]
    document = item_json(tiny_model)
    del document["assets"]["weights"]["mlm:artifact_type"]
    assert schema_errors(document, MLM_SCHEMA, registry)


def test_source_code_and_container_assets(tiny_model: str) -> None:
    item = item_of(tiny_model)
    source = item.assets[SOURCE_CODE]
    assert {"mlm:source_code", "code"} <= set(source.roles or [])
    assert source.href == f"https://github.com/deep-lulc/deep-lulc/tree/v{__version__}"  # pyproject's Source
    assert f"pip install git+https://github.com/deep-lulc/deep-lulc@v{__version__}" in (source.description or "")
    module, function = source.extra_fields["mlm:entrypoint"].split(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))
    container = item.assets[CONTAINER]
    assert {"mlm:container", "runtime"} <= set(container.roles or [])
    assert container.media_type == "application/vnd.oci.image.index.v1+json"
    template = yaml.safe_load((PROJECT_ROOT / "argo" / "workflowtemplate.yaml").read_text())
    defaults = {p["name"]: p.get("value") for p in template["spec"]["arguments"]["parameters"]}
    predict = next(t for t in template["spec"]["templates"] if t["name"] == "predict")
    image = predict["container"]["image"].strip("{}").split(".")[-1]  # "{{workflow.parameters.gpu-image}}"
    assert container.href == f"docker://{defaults[image]}", "the image the Argo predict template runs"


def test_every_file_asset_has_its_size_checksum_and_mode_0644(tiny_model: str) -> None:
    item = item_of(tiny_model)
    files = {
        key: Path(a.get_absolute_href() or "") for key, a in item.assets.items() if key not in (SOURCE_CODE, CONTAINER)
    }
    assert {"weights", "config", "metrics", "history"} <= set(files)
    for key, path in files.items():
        data = path.read_bytes()
        fields = item.assets[key].extra_fields
        assert fields["file:size"] == len(data), key
        assert fields["file:checksum"] == "1220" + hashlib.sha256(data).hexdigest(), key
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, key


def test_a_generic_mlm_consumer_learns_inputs_and_normalisation(tiny_model: str) -> None:
    """What a consumer that knows MLM and nothing of deep-lulc reads is what predict uses (its config)."""
    item = item_of(tiny_model)
    mlm = MLMExtension.ext(item)  # pystac's MLM classes read the 1.5.2 item
    (model_input,) = mlm.input
    bands = list(model_input.bands)
    scaling = item.properties["mlm:input"][0]["value_scaling"]
    assert {s["type"] for s in scaling} == {"z-score"}
    mean = np.array([s["mean"] for s in scaling])
    std = np.array([s["stddev"] for s in scaling])
    shape = model_input.input.shape
    classes = {c["value"]: c["name"] for c in item.properties["mlm:output"][0]["classification:classes"]}
    nodata = [c["value"] for c in item.properties["mlm:output"][0]["classification:classes"] if c.get("nodata")]
    loaded = load_model(read_model(tiny_model))  # and predict still reads the item
    config = loaded.config
    assert bands == config.channels
    assert (mean.tolist(), std.tolist()) == (config.mean, config.std)
    assert shape == [-1, config.n_in, config.chip_size, config.chip_size]
    assert classes == dict(zip(config.class_values, config.class_names, strict=True))
    assert nodata == [config.nodata]
    chip = torch.from_numpy(((np.ones((1, *shape[1:])) - mean[:, None, None]) / std[:, None, None]).astype("float32"))
    with torch.no_grad():
        assert tuple(loaded.network(chip).shape) == (1, config.n_out, *shape[2:])


@pytest.fixture
def restrictive_umask() -> Iterator[None]:
    previous = os.umask(0o077)  # what many pods run with: files 0600 unless the writer says otherwise
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.slow
def test_lightgbm_model_under_umask_077(
    tiny_chips: str,
    tmp_path: Path,
    registry: Registry,
    restrictive_umask: None,
) -> None:
    result = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=TrainParams(architecture="lightgbm"))
    item = item_of(result.catalog)
    assert Path(item.assets["weights"].get_absolute_href() or "").name == "model.txt"
    for key, asset in item.assets.items():
        if key not in (SOURCE_CODE, CONTAINER):
            assert stat.S_IMODE(Path(asset.get_absolute_href() or "").stat().st_mode) == 0o644, key
    document = item_json(result.catalog)
    assert schema_errors(document, MLM_SCHEMA, registry) == []


def test_a_deployment_names_its_own_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`DEEP_LULC_IMAGE` (a private registry, a pinned digest) is the container the item points at."""
    monkeypatch.setenv("DEEP_LULC_IMAGE", "registry.example.org/lulc/deep-lulc@sha256:" + "ab" * 32)
    names = [c.name for c in SLOVENIA.classes]
    config = ModelConfig(
        encoder="resnet18",
        n_in=2,
        n_out=11,
        chip_size=32,
        input_mode="stack",
        channels=["a", "b"],
        features=["a", "b"],
        dates=["2023-01-01"],
        mean=[0.0, 1.0],
        std=[1.0, 2.0],
        class_values=SLOVENIA.values,
        class_names=names,
        nodata=0,
    )
    folder = tmp_path / "model-x"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / CONFIG_NAME).write_text(config.to_json())
    item = model_item(
        "model-x",
        config=config,
        scheme=SLOVENIA,
        bbox=[15.0, 46.0, 15.1, 46.1],
        temporal=("2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"),
        parameters=10,
        pretrained_source=None,
        device=torch.device("cpu"),
        batch_size=4,
        hyperparameters={"epochs": 1},
        assets={
            "weights": (folder / "model.safetensors", SAFETENSORS_MEDIA_TYPE, "w", ["mlm:model", "mlm:weights"]),
            "config": (folder / CONFIG_NAME, "application/json", "c", ["metadata"]),
        },
        chips_href="/nowhere/chips/collection.json",
    )
    catalog = pystac.Catalog(id="model", description="test")
    catalog.add_item(item)
    written = item_of(str(save_self_contained(catalog, tmp_path)))
    assert written.assets[CONTAINER].href == "docker://registry.example.org/lulc/deep-lulc@sha256:" + "ab" * 32
    assert written.assets[SOURCE_CODE].href.startswith("https://"), "absolute hrefs survive a self-contained save"
    written.validate()

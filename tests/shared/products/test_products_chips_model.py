"""The chips and model products: what their writers record comes back from their readers, and a chip or
weights file that is not what was recorded (gone, cut short, swapped) is bad input naming it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import torch
from affine import Affine
from pystac.extensions.file import FileExtension
from pystac.extensions.mlm import MLMExtension

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import geobox, geobox_of, write_projection
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.chips import (
    TRAIN,
    VALIDATION,
    ChipsSummary,
    channel_names,
    read_chip,
    read_chips,
    write_chip,
    write_chips_catalog,
)
from deep_lulc.shared.products.model import CONFIG_NAME, SAFETENSORS_MEDIA_TYPE, model_item, read_model

from ...conftest import BIN, cli_env, validate_tree
from ...resealing import reseal

FEATURES = ["B02", "B03", "B04", "NDVI"]
DATES = ["2023-03-01", "2023-06-01", "2023-09-01"]
GRID = geobox(32633, Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 5_100_000.0), 48, 40)
SIZE = 16
WINDOWS = [(0, 0, TRAIN), (0, 24, TRAIN), (32, 0, VALIDATION), (32, 24, VALIDATION)]


def features_item() -> pystac.Item:
    item = pystac.Item(
        "features-test",
        None,
        [15.0, 46.0, 15.1, 46.1],
        None,
        {"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2023-12-31T23:59:59Z"},
    )
    write_projection(item, GRID)
    item.set_self_href("/nowhere/features-test.json")
    return item


@pytest.fixture
def written_chips(tmp_path: Path) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Four seeded chips written by the product (2 train, 2 validation); their catalog and what went in."""
    rng = np.random.default_rng(7)
    channels = channel_names(FEATURES, DATES)
    source = features_item()
    items, inputs = [], {}
    for index, (row, col, split) in enumerate(WINDOWS):
        values = rng.uniform(0.0, 0.6, (len(channels), SIZE, SIZE)).astype(np.float32)
        values[:, :2, :3] = np.nan  # unobserved pixels travel as nodata
        label = rng.choice(SLOVENIA.values, size=(SIZE, SIZE)).astype(np.uint8)
        identifier = f"chip-{index:05d}"
        inputs[identifier] = (values, label)
        item = write_chip(
            tmp_path / "chips",
            identifier,
            values,
            label,
            features_grid=GRID,
            row=row,
            col=col,
            split=split,
            block=f"r{row // 32}c{col // 24}",
            features_item=source,
            channels=channels,
            scheme=SLOVENIA,
        )
        items.append(item)
    split_path = tmp_path / "split.json"
    split_path.write_text("{}\n")
    summary = ChipsSummary(
        sampling="grid",
        chip_size=SIZE,
        block_size=1,
        count=len(WINDOWS),
        auto=[],
        channels=channels,
        features=FEATURES,
        class_counts={TRAIN: {"1": 10}, VALIDATION: {"2": 5}},
        mean=rng.uniform(0, 1, len(channels)),
        std=rng.uniform(0.1, 1, len(channels)),
        split_warnings=[],
        tally={TRAIN: 2, VALIDATION: 2},
        labels={"polygons": 0},
        scheme=SLOVENIA,
    )
    catalog = write_chips_catalog(
        tmp_path,
        features_item=source,
        summary=summary,
        items=items,
        split_path=split_path,
        labels_href=str(tmp_path / "labels.gpkg"),
    )
    return str(catalog), inputs


def test_chips_come_back_as_written(written_chips: tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]) -> None:
    catalog, inputs = written_chips
    assert validate_tree(catalog) == 2 + len(WINDOWS)
    chips = read_chips(catalog)
    assert chips.channels == tuple(channel_names(FEATURES, DATES))
    assert chips.features == tuple(FEATURES)
    assert chips.dates == tuple(DATES)
    assert chips.chip_size == SIZE
    assert chips.scheme == SLOVENIA
    assert chips.class_counts == {TRAIN: {"1": 10}, VALIDATION: {"2": 5}}
    assert [r.item_id for r in chips.split(TRAIN)] == ["chip-00000", "chip-00001"]
    assert [r.window for r in chips.split(VALIDATION)] == [(32, 0, SIZE), (32, 24, SIZE)]
    for record in chips.records:
        image, label = read_chip(record)
        values, labels = inputs[record.item_id]
        np.testing.assert_array_equal(np.isnan(image), np.isnan(values))
        np.testing.assert_allclose(image, values, atol=0.5e-4 + 1e-7)  # stored as int16 x 1e-4
        np.testing.assert_array_equal(label, labels)
    item = next(pystac.Collection.from_file(chips.collection_href).get_items("chip-00003"))
    row, col, _ = WINDOWS[3]
    chip_grid = geobox_of(item)
    assert chip_grid == GRID[row : row + SIZE, col : col + SIZE]
    for key in ("image", "label", "preview"):
        asset = item.assets[key]
        assert FileExtension.ext(asset).size == Path(asset.get_absolute_href() or "").stat().st_size


def test_the_stage_records_every_chip_file_size(tiny_chips: str) -> None:
    chips = read_chips(tiny_chips)
    assert chips.split(TRAIN)
    assert chips.split(VALIDATION)
    collection = pystac.Collection.from_file(chips.collection_href)
    for item in collection.get_items():
        for key in ("image", "label", "preview"):
            asset = item.assets[key]
            assert FileExtension.ext(asset).size == Path(asset.get_absolute_href() or "").stat().st_size


def _copy(catalog: str, target: Path) -> Path:
    shutil.copytree(Path(catalog).parent, target)
    return target


def test_a_deleted_chip_file_is_bad_input_naming_it(
    written_chips: tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]], tmp_path: Path
) -> None:
    copy = _copy(written_chips[0], tmp_path / "copy")
    (copy / "chips" / "chip-00001" / "label.tif").unlink()
    with pytest.raises(BadInputError, match=r"chip file \S*chip-00001/label\.tif of chip-00001 is missing"):
        read_chips(str(copy / "catalog.json"))


def test_a_truncated_chip_file_is_bad_input_naming_it(tiny_chips: str, tmp_path: Path) -> None:
    copy = _copy(tiny_chips, tmp_path / "copy")
    image = copy / "chips" / "chip-00002" / "image.tif"
    size = image.stat().st_size
    with image.open("r+b") as handle:
        handle.truncate(size // 2)
    (copy / "chips" / "chip-00005" / "label.tif").unlink()
    message = (
        rf"chip file \S*chip-00002/image\.tif of chip-00002 is truncated: {size // 2} bytes where the chips "
        rf"collection records {size} \(and 1 more damaged chip files\)"
    )
    with pytest.raises(BadInputError, match=message):
        read_chips(str(copy / "catalog.json"))


def test_a_chip_file_damaged_after_reading_the_collection_is_bad_input(
    written_chips: tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]],
) -> None:
    chips = read_chips(written_chips[0])
    first, second = chips.records[:2]
    Path(first.image).unlink()
    with pytest.raises(BadInputError, match=r"chip file \S*chip-00000/image\.tif\b"):  # wording: shared/io/cog.py
        read_chip(first)
    label = Path(second.label)
    label.write_bytes(label.read_bytes()[:-10])
    with pytest.raises(BadInputError, match=r"chip file \S*chip-00001/label\.tif\b"):
        read_chip(second)


CONFIG = ModelConfig(
    encoder="resnet18",
    n_in=len(FEATURES) * len(DATES),
    n_out=max(SLOVENIA.values) + 1,
    chip_size=SIZE,
    input_mode="stack",
    channels=channel_names(FEATURES, DATES),
    features=FEATURES,
    dates=DATES,
    mean=[0.1] * 12,
    std=[0.2] * 12,
    class_values=SLOVENIA.values,
    class_names=[c.name for c in SLOVENIA.classes],
)


@pytest.fixture
def written_model(tmp_path: Path) -> Path:
    """A model item written by the product around seeded stand-in weights; its catalog."""
    folder = tmp_path / "model" / "model-test"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(np.random.default_rng(3).bytes(4096))
    (folder / CONFIG_NAME).write_text(CONFIG.to_json() + "\n")
    item = model_item(
        "model-test",
        config=CONFIG,
        scheme=SLOVENIA,
        bbox=[15.0, 46.0, 15.1, 46.1],
        temporal=("2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"),
        parameters=1234,
        pretrained_source=None,
        device=torch.device("cpu"),
        batch_size=8,
        hyperparameters={"epochs": 1, "lr": 0.001},
        assets={
            "weights": (folder / "model.safetensors", SAFETENSORS_MEDIA_TYPE, "weights", ["mlm:model", "mlm:weights"]),
            "config": (folder / CONFIG_NAME, "application/json", "config", ["metadata"]),
        },
        chips_href="/nowhere/chips/collection.json",
    )
    catalog = pystac.Catalog(id="model", description="test model")
    catalog.add_item(item)
    return save_self_contained(catalog, tmp_path / "model")


def test_the_model_comes_back_as_written(written_model: Path) -> None:
    assert validate_tree(written_model) == 2  # MLM 1.4, classification, raster and file schemas
    model = read_model(str(written_model))
    assert model.config == CONFIG
    assert model.read_weights() == np.random.default_rng(3).bytes(4096)
    scheme = model.class_scheme()
    assert [(c.value, c.name, c.description, c.color.lower()) for c in scheme.classes] == [
        (c.value, c.name, c.description, c.color.lower()) for c in SLOVENIA.classes
    ]
    assert scheme.nodata == SLOVENIA.nodata
    mlm = MLMExtension.ext(model.item)
    assert mlm.total_parameters == 1234
    (model_input,) = model.item.properties["mlm:input"]
    assert model_input["bands"] == CONFIG.channels
    assert model_input["value_scaling"] == [{"type": "z-score", "mean": 0.1, "stddev": 0.2}] * 12
    assert model_input["input"]["shape"] == [-1, 12, SIZE, SIZE]
    weights = model.item.assets["weights"]
    assert weights.extra_fields["mlm:artifact_type"] == "safetensors"
    assert [band["name"] for band in weights.extra_fields["raster:bands"]] == CONFIG.channels
    assert FileExtension.ext(weights).size == 4096
    assert str(FileExtension.ext(weights).checksum).startswith("1220")


def test_damaged_weights_are_bad_input_naming_them(written_model: Path) -> None:
    weights = next(written_model.parent.rglob("model.safetensors"))
    original = weights.read_bytes()
    weights.write_bytes(original[:1000])
    with pytest.raises(
        BadInputError,
        match=r"model weights \S*model\.safetensors are truncated: 1000 bytes where "
        r"the model item records 4096",
    ):
        read_model(str(written_model)).read_weights()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # same size, one bit flipped
    with pytest.raises(BadInputError, match=r"model\.safetensors are not the file `deep-lulc train` wrote: a SHA-256"):
        read_model(str(written_model)).read_weights()
    weights.write_bytes(b"\x80\x04pickled")  # the loader refuses a pickle for what it is, whatever its size
    assert read_model(str(written_model)).read_weights() == b"\x80\x04pickled"


def test_a_truncated_or_edited_config_is_refused_and_a_resealed_one_is_used(written_model: Path) -> None:
    config = next(written_model.parent.rglob(CONFIG_NAME))
    text = config.read_text()
    config.write_text(text[: len(text) // 2])
    with pytest.raises(BadInputError, match=rf"model config \S*{CONFIG_NAME} is truncated: \d+ bytes where"):
        read_model(str(written_model))
    edited = json.loads(text) | {"window": 64}  # a valid config, another model: it would map differently
    config.write_text(json.dumps(edited))
    with pytest.raises(BadInputError, match=rf"model config \S*{CONFIG_NAME} is not the file `deep-lulc train` wrote"):
        read_model(str(written_model))
    reseal(written_model)  # the same edit recorded in the item, as a writer would: a model of its own
    assert read_model(str(written_model)).config.window == 64


@pytest.mark.slow
def test_predict_refuses_truncated_weights_in_one_line(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    copy = _copy(tiny_model, tmp_path / "model")
    weights = next(copy.rglob("model.safetensors"))
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size - 100)
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            str(copy / "catalog.json"),
            "--features",
            tiny_features,
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("deep-lulc ")]
    assert len(errors) == 1, completed.stderr
    assert errors[0].startswith("deep-lulc predict: error: model weights ")
    assert "model.safetensors are truncated" in errors[0]
    assert completed.stdout == ""

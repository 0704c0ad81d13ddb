"""`deep-lulc train`: a tiny U-Net that learns, reloads without unpickling, resumes, and is a valid MLM item."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import torch

from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.chips_data import ChipDataset, load_chips
from deep_lulc.stages.train.evaluation import predict_chip
from deep_lulc.stages.train.losses import DiceCrossEntropy, FocalLoss, WeightedCrossEntropy, class_weights
from deep_lulc.stages.train.network import ModelConfig, build_network, load_weights
from deep_lulc.stages.train.params import TrainParams

from .conftest import BIN, cli_env, validate_tree

TINY_TRAINING = TrainParams(encoder="resnet18", epochs=3, batch_size=8, lr=1e-3, pretrained=False, patience=10)


def model_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


@pytest.fixture(scope="module")
def trained(tiny_chips: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("model")
    params = TINY_TRAINING.model_copy(update={"baseline": "lightgbm"})
    return train.run(inputs={"chips": tiny_chips}, output=str(out), params=params).catalog


def test_training_lowers_the_loss_and_reports_true_metrics(trained: str) -> None:
    item = model_of(trained)
    history = (Path(item.assets["history"].get_absolute_href() or "")).read_text().splitlines()
    losses = [float(line.split(",")[1]) for line in history[1:]]
    assert len(losses) == 3
    assert min(losses[1:]) < losses[0]
    report = json.loads(Path(item.assets["metrics"].get_absolute_href() or "").read_text())
    unet = report["unet"]
    assert 0.0 <= unet["miou"] <= 1.0
    assert set(unet["per_class"]) == {
        "CultivatedLand", "Forest", "Grassland", "Shrubland", "Water", "Wetlands", "Tundra", "ArtificialSurface",
        "Bareland", "SnowAndIce",
    }  # fmt: skip
    assert report["baseline"]["miou"] is not None
    assert report["comparison"]
    for asset in ("confusion_matrix", "loss"):
        assert Path(item.assets[asset].get_absolute_href() or "").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_item_validates_with_mlm(trained: str) -> None:
    assert validate_tree(trained) == 2
    item = model_of(trained)
    assert item.properties["mlm:tasks"] == ["semantic-segmentation"]
    assert item.properties["mlm:total_parameters"] > 1_000_000
    (model_input,) = item.properties["mlm:input"]
    assert len(model_input["bands"]) == 23 * 9
    assert model_input["input"]["shape"] == [-1, 23 * 9, 32, 32]
    (output,) = item.properties["mlm:output"]
    assert {"value", "name", "description"} <= set(output["classification:classes"][1])
    assert {"mlm:model", "mlm:weights"} <= set(item.assets["weights"].roles or [])


def test_reload_from_config_and_safetensors_gives_identical_predictions(trained: str, tiny_chips: str) -> None:
    item = model_of(trained)
    config = ModelConfig.from_json(Path(item.assets["config"].get_absolute_href() or "").read_text())
    rebuilt = load_weights(build_network(config), item.assets["weights"].get_absolute_href() or "").eval()
    source = load_chips(tiny_chips, mode="stack")
    records = source.split("validation")
    dataset = ChipDataset(records, mode="stack", n_dates=len(source.dates), mean=np.array(config.mean),
                          std=np.array(config.std), augment=False)  # fmt: skip
    again = load_weights(build_network(config), item.assets["weights"].get_absolute_href() or "").eval()
    for chip in range(len(records)):
        first = predict_chip(rebuilt, dataset, chip, torch.device("cpu"))
        np.testing.assert_array_equal(first, predict_chip(again, dataset, chip, torch.device("cpu")))
    assert not Path(item.assets["weights"].get_absolute_href() or "").read_bytes().startswith(b"\x80")  # not a pickle


def test_single_date_mode_feeds_one_date_per_sample(tiny_chips: str, tmp_path: Path) -> None:
    params = TINY_TRAINING.model_copy(update={"input_mode": "single-date", "epochs": 1})
    result = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=params)
    item = model_of(result.catalog)
    assert item.properties["mlm:input"][0]["input"]["shape"] == [-1, 9, 32, 32]
    assert result.extra["miou"] is not None


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tiny_chips: str, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = [str(BIN / "deep-lulc"), "train", "--chips", tiny_chips, "--out", str(out), "--encoder", "resnet18",
            "--epochs", "3", "--lr", "1e-3", "--no-pretrained", "--batch-size", "8"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    state_file = out / "checkpoints" / "state.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if state_file.is_file() and json.loads(state_file.read_text())["epochs_done"] >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted = json.loads(state_file.read_text())
    assert 1 <= interrupted["epochs_done"] < 3, "the run must be killed part-way"
    assert not (out / "catalog.json").exists()
    completed = subprocess.run([*args, "--resume"], capture_output=True, text=True, check=False, env=cli_env())
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert f"resuming after epoch {interrupted['epochs_done']} of 3" in completed.stderr
    final = json.loads(state_file.read_text())
    assert [row["epoch"] for row in final["history"]] == [1, 2, 3]
    assert final["history"][: interrupted["epochs_done"]] == interrupted["history"]


def test_clear_errors(tiny_chips: str, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="no CUDA device"):
            train.run(inputs={"chips": tiny_chips}, output=str(tmp_path / "a"),
                      params=TINY_TRAINING.model_copy(update={"device": "cuda"}))  # fmt: skip
    evil = tmp_path / "encoder.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": object()}))
    with pytest.raises(BadInputError, match="not a plain state dict"):
        train.run(inputs={"chips": tiny_chips}, output=str(tmp_path / "b"),
                  params=TINY_TRAINING.model_copy(update={"weights": str(evil)}))  # fmt: skip
    with pytest.raises(BadInputError, match="holds no chips collection"):
        train.run(inputs={"chips": str(Path(tiny_chips).parent / "chips" / "chip-00000" / "chip-00000.json")},
                  output=str(tmp_path / "c"), params=TINY_TRAINING)  # fmt: skip
    with pytest.raises(ValueError, match="must be 'auto' or a number"):
        TrainParams(lr="fast")


def test_losses_ignore_nodata_and_weight_rare_classes() -> None:
    weights = class_weights({"1": 900, "5": 100}, 6)
    assert weights[0] == 0
    assert weights[5] > weights[1] > 0
    assert float(weights[weights > 0].mean()) == pytest.approx(1.0)
    logits = torch.randn(2, 6, 4, 4, requires_grad=True)
    target = torch.randint(0, 6, (2, 4, 4))
    target[0] = 0
    for loss in (WeightedCrossEntropy(weights), FocalLoss(weights), DiceCrossEntropy(weights)):
        value = loss(logits, target)
        value.backward()
        assert torch.isfinite(value)
    changed = logits.detach().clone()
    changed[0] += 100 * torch.randn_like(changed[0])  # the NoData image cannot change a loss that ignores it
    ce = WeightedCrossEntropy(weights)
    assert float(ce(changed, target)) == pytest.approx(float(ce(logits.detach(), target)), rel=1e-5)

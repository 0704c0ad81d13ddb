"""`deep-lulc train`: a tiny U-Net that learns, reloads without unpickling, resumes, and is a valid MLM item."""

from __future__ import annotations

import json
import pickle
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import torch

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.models.networks import ModelConfig, build_network, load_weights
from deep_lulc.shared.products.chips import ChipRecord, read_chip, read_chips
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.chips_data import ChipDataset, PixelDataset
from deep_lulc.stages.train.evaluation import predict_chip
from deep_lulc.stages.train.losses import DiceCrossEntropy, FocalLoss, WeightedCrossEntropy, class_weights
from deep_lulc.stages.train.params import TrainParams

from ..conftest import BIN, cli_env, validate_tree

TINY_TRAINING = TrainParams(
    architecture="unet", encoder="resnet18", epochs=3, batch_size=8, lr=1e-3, pretrained=False, patience=10
)
TINY_TEMPORAL = TrainParams(epochs=3, batch_size=8, patience=10)


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
        "CultivatedLand",
        "Forest",
        "Grassland",
        "Shrubland",
        "Water",
        "Wetlands",
        "Tundra",
        "ArtificialSurface",
        "Bareland",
        "SnowAndIce",
    }
    assert report["baseline"]["miou"] is not None
    assert report["comparison"]
    for asset in ("confusion_matrix", "loss"):
        assert Path(item.assets[asset].get_absolute_href() or "").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_item_validates_with_mlm(trained: str) -> None:
    assert validate_tree(trained) == 3
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
    source = read_chips(tiny_chips)
    records = source.split("validation")
    dataset = ChipDataset(
        records,
        mode="stack",
        n_dates=len(source.dates),
        mean=np.array(config.mean),
        std=np.array(config.std),
        augment=False,
    )
    again = load_weights(build_network(config), item.assets["weights"].get_absolute_href() or "").eval()
    for chip in range(len(records)):
        first = predict_chip(rebuilt, dataset, chip, torch.device("cpu"))
        np.testing.assert_array_equal(first, predict_chip(again, dataset, chip, torch.device("cpu")))
    assert not Path(item.assets["weights"].get_absolute_href() or "").read_bytes().startswith(b"\x80")  # not a pickle


@pytest.mark.slow
def test_single_date_mode_feeds_one_date_per_sample(tiny_chips: str, tmp_path: Path) -> None:
    params = TINY_TRAINING.model_copy(update={"input_mode": "single-date", "epochs": 1, "batch_size": 64})
    result = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=params)
    item = model_of(result.catalog)
    assert item.properties["mlm:input"][0]["input"]["shape"] == [-1, 9, 32, 32]
    assert result.extra["miou"] is not None


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(tiny_chips: str, tmp_path: Path) -> None:
    out = tmp_path / "model"
    args = [
        str(BIN / "deep-lulc"),
        "train",
        "--chips",
        tiny_chips,
        "--out",
        str(out),
        "--architecture",
        "unet",
        "--encoder",
        "resnet18",
        "--epochs",
        "3",
        "--lr",
        "1e-3",
        "--no-pretrained",
        "--batch-size",
        "8",
    ]
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
            train.run(
                inputs={"chips": tiny_chips},
                output=str(tmp_path / "a"),
                params=TINY_TRAINING.model_copy(update={"device": "cuda"}),
            )
    evil = tmp_path / "encoder.pth"
    evil.write_bytes(pickle.dumps({"conv1.weight": object()}))
    with pytest.raises(BadInputError, match="not a plain state dict"):
        train.run(
            inputs={"chips": tiny_chips},
            output=str(tmp_path / "b"),
            params=TINY_TRAINING.model_copy(update={"weights": str(evil)}),
        )
    with pytest.raises(BadInputError, match="holds no chips collection"):
        train.run(
            inputs={"chips": str(Path(tiny_chips).parent / "chips" / "chip-00000" / "chip-00000.json")},
            output=str(tmp_path / "c"),
            params=TINY_TRAINING,
        )
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


@pytest.fixture(scope="module")
def temporal(tiny_chips: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("temporal")
    return train.run(inputs={"chips": tiny_chips}, output=str(out), params=TINY_TEMPORAL).catalog


def test_default_model_is_temporal_and_validated_as_maps(temporal: str) -> None:
    assert TrainParams().architecture == "temporal-pixel"
    item = model_of(temporal)
    assert item.properties["deep-lulc:architecture"] == "temporal-pixel"
    validation = item.properties["deep-lulc:validation"]
    assert (validation["window"], validation["overlap"]) == (512, 64)
    config = ModelConfig.from_json(Path(item.assets["config"].get_absolute_href() or "").read_text())
    assert (config.window, config.overlap) == (512, 64), "predict defaults to the validated window"
    report = json.loads(Path(item.assets["metrics"].get_absolute_href() or "").read_text())
    assert report["unet"]["level"] == "validation chips"
    assert set(report["map_by_window"]) == {"512/64", "32/8"}
    assert report["map"]["pixels"] > 0
    assert validation["map_miou"] == report["map"]["miou"]
    # the map scores count every validation pixel the chips label, once
    labelled = sum(v["support"] for v in report["map"]["per_class"].values())
    assert labelled == report["map"]["pixels"]
    assert 0 <= report["map"]["miou"] <= 1


@pytest.mark.slow
def test_the_same_seed_gives_the_same_weights_and_metrics(temporal: str, tiny_chips: str, tmp_path: Path) -> None:
    again = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=TINY_TEMPORAL)
    first, second = model_of(temporal), model_of(again.catalog)
    weights = [Path(i.assets["weights"].get_absolute_href() or "").read_bytes() for i in (first, second)]
    assert weights[0] == weights[1], "CPU training with one seed must be byte-identical"
    metrics = [json.loads(Path(i.assets["metrics"].get_absolute_href() or "").read_text()) for i in (first, second)]
    assert metrics[0]["map"]["miou"] == pytest.approx(metrics[1]["map"]["miou"], abs=1e-3)
    assert metrics[0]["unet"]["miou"] == pytest.approx(metrics[1]["unet"]["miou"], abs=1e-3)
    other = train.run(
        inputs={"chips": tiny_chips},
        output=str(tmp_path / "seed1"),
        params=TINY_TEMPORAL.model_copy(update={"seed": 1, "epochs": 1}),
    )
    assert Path(model_of(other.catalog).assets["weights"].get_absolute_href() or "").read_bytes() != weights[0]


@pytest.mark.slow
def test_lightgbm_is_a_model_of_its_own(tiny_chips: str, tiny_features: str, tmp_path: Path) -> None:
    result = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=TrainParams(architecture="lightgbm"))
    item = model_of(result.catalog)
    text = Path(item.assets["weights"].get_absolute_href() or "").read_text()
    assert text.startswith("tree"), "LightGBM's text model format, not a pickle"
    assert item.properties["mlm:framework"] == "lightgbm"
    assert "history" not in item.assets
    config = ModelConfig.from_json(Path(item.assets["config"].get_absolute_href() or "").read_text())
    assert config.architecture == "lightgbm"
    assert config.output_values
    assert set(config.output_values) <= set(config.class_values)
    assert 0 < result.extra["miou"] <= 1
    assert validate_tree(result.catalog) == 3
    from deep_lulc.stages.predict import stage as predict
    from deep_lulc.stages.predict.params import PredictParams

    mapped = predict.run(
        inputs={"model": result.catalog, "features": tiny_features},
        output=str(tmp_path / "map"),
        params=PredictParams(),
    )
    with rasterio.open(str(mapped.extra["classes"])) as source:
        classes = source.read(1)
    assert set(np.unique(classes)) <= {0, *config.output_values}
    with pytest.raises(BadInputError, match="--device cuda needs a network"):
        predict.run(
            inputs={"model": result.catalog, "features": tiny_features},
            output=str(tmp_path / "cuda"),
            params=PredictParams(device="cuda"),
        )


def test_options_an_architecture_does_not_take_are_refused() -> None:
    def refused(flag: str, architecture: str) -> str:
        return re.escape(f"{flag} do(es) not apply to --architecture {architecture}")

    with pytest.raises(ValueError, match=refused("--weights", "lightgbm") + ": use --architecture unet"):
        TrainParams(architecture="lightgbm", weights="encoder.safetensors")
    fitting = ": use --architecture temporal-pixel or temporal-unet or unet"
    with pytest.raises(ValueError, match=refused("--resume", "lightgbm") + fitting):
        TrainParams(architecture="lightgbm", resume=True)
    with pytest.raises(ValueError, match=refused("--pretrained", "temporal-unet")):
        TrainParams(architecture="temporal-unet", pretrained=True)
    with pytest.raises(ValueError, match=refused("--encoder", "temporal-pixel")):
        TrainParams(encoder="resnet18")  # the default architecture has no ImageNet encoder: never silently ignored
    with pytest.raises(ValueError, match="temporal-unet"):
        TrainParams(architecture="dense")
    # Argo passes every parameter; an empty one is not given
    assert TrainParams(encoder="", lr="").model_dump(include={"encoder", "lr"}) == {"encoder": None, "lr": None}
    assert TrainParams(architecture="unet", encoder="resnet18", pretrained=False).encoder_name == "resnet18"
    assert TrainParams(architecture="unet").encoder_name == "resnet34"


def test_default_epochs_give_small_training_sets_enough_steps() -> None:
    assert TrainParams().epochs_for(steps_per_epoch=10) == 60
    assert TrainParams().epochs_for(steps_per_epoch=400) == 20
    assert TrainParams(architecture="temporal-unet").epochs_for(steps_per_epoch=10) == 20
    assert TrainParams(epochs=3).epochs_for(steps_per_epoch=10) == 3


def test_cli_refuses_an_unknown_architecture_in_one_line(tiny_chips: str, tmp_path: Path) -> None:
    args = [
        str(BIN / "deep-lulc"),
        "train",
        "--chips",
        tiny_chips,
        "--out",
        str(tmp_path / "m"),
        "--architecture",
        "transformer",
    ]
    completed = subprocess.run(args, capture_output=True, text=True, check=False, env=cli_env())
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert "architecture" in lines[0]
    assert not (tmp_path / "m").exists()
    args = [*args[:-1], "lightgbm", "--weights", str(tmp_path / "w.safetensors")]
    completed = subprocess.run(args, capture_output=True, text=True, check=False, env=cli_env())
    assert completed.returncode == 2
    assert "--weights do(es) not apply to --architecture lightgbm" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_map_does_not_depend_on_the_inference_window(
    temporal: str, tiny_features: str, tiny_catalog: Path, tmp_path: Path
) -> None:
    """The collapse users saw (one class over 99 % of the AOI at 512 px windows, fine at 64 px) cannot come
    back unnoticed: the same model maps the same features at both windows within 0.03 mIoU."""
    from deep_lulc.stages.evaluate import stage as evaluate
    from deep_lulc.stages.evaluate.params import EvaluateParams
    from deep_lulc.stages.predict import stage as predict
    from deep_lulc.stages.predict.params import PredictParams

    scores, maps = [], []
    for window, overlap in ((64, 16), (512, 64)):
        out = tmp_path / f"w{window}"
        predicted = predict.run(
            inputs={"model": temporal, "features": tiny_features},
            output=str(out / "p"),
            params=PredictParams(tile_size=window, overlap=overlap),
        )
        with rasterio.open(str(predicted.extra["classes"])) as source:
            maps.append(source.read(1))
        scored = evaluate.run(
            inputs={"prediction": predicted.catalog, "labels": str(tiny_catalog / "labels.gpkg")},
            output=str(out / "e"),
            params=EvaluateParams(),
        )
        scores.append(float(scored.extra["miou"]))
    assert abs(scores[0] - scores[1]) <= 0.03, scores
    assert (maps[0] == maps[1]).mean() > 0.97


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"format": "deep-lulc-model/1", "encoder": "resnet18"}', "missing fields"),
        ('{"format": "other"}', "not a deep-lulc model config"),
    ],
)
def test_a_malformed_model_config_is_bad_input(text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        ModelConfig.from_json(text)


def test_a_model_config_with_an_unknown_architecture_is_bad_input(temporal: str) -> None:
    item = model_of(temporal)
    document = json.loads(Path(item.assets["config"].get_absolute_href() or "").read_text())
    document["architecture"] = "transformer"
    with pytest.raises(BadInputError, match="unknown architecture 'transformer'"):
        ModelConfig.from_json(json.dumps(document))
    document["architecture"], document["n_in"] = "unet", "many"
    with pytest.raises(BadInputError, match=r"\['n_in'\] have the wrong type"):
        ModelConfig.from_json(json.dumps(document))


def test_pixel_samples_hold_each_labelled_pixel_once(tiny_chips: str) -> None:
    """Overlapping chips share pixels: a per-pixel network must not see those twice as often as the others."""
    records = read_chips(tiny_chips).split("train")
    positions: dict[tuple[int, int], int] = {}
    for record in records:
        _, label = read_chip(record)
        assert record.window is not None
        row, col, _ = record.window
        for y, x in zip(*np.nonzero(label), strict=True):
            positions[(row + int(y), col + int(x))] = int(label[y, x])
    n_in = read_chips(tiny_chips).input_statistics("stack")[0].shape[0]
    pixels = PixelDataset(records, mean=np.zeros(n_in), std=np.ones(n_in))
    assert len(pixels) == len(positions) > 0
    assert sorted(np.bincount(pixels.y).tolist()) == sorted(np.bincount(list(positions.values())).tolist())
    sample, target = pixels[0]
    assert sample.shape == (n_in, 1, 1)
    assert target.shape == (1, 1)
    assert np.isfinite(pixels.x).all()
    capped = PixelDataset(
        records, mean=np.zeros(n_in), std=np.ones(n_in), labelled=len(positions), limit=len(positions) // 4
    )
    assert 0 < len(capped) < len(positions) // 2, "large AOIs keep a seeded share of their pixels"


def test_lightgbm_model_item_describes_the_outputs_it_produces(tiny_chips: str, tmp_path: Path) -> None:
    result = train.run(inputs={"chips": tiny_chips}, output=str(tmp_path), params=TrainParams(architecture="lightgbm"))
    item = model_of(result.catalog)
    config = ModelConfig.from_json(Path(item.assets["config"].get_absolute_href() or "").read_text())
    (output,) = item.properties["mlm:output"]
    values = [c["value"] for c in output["classification:classes"]]
    assert values == config.output_values, "output i is classes[i]: the booster's classes, in order"
    assert output["result"]["shape"][1] == len(config.output_values or []) < config.n_out
    text = Path(item.assets["weights"].get_absolute_href() or "").read_text()
    assert f"num_class={len(values)}" in text
    # the map legend still knows every class of the scheme, NoData included
    assert [c["value"] for c in item.properties["classification:classes"]] == config.class_values


def test_single_date_samples_decode_each_chip_once_and_match_the_file(
    tiny_chips: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-date mode draws a chip once per date, and every epoch again: the dataset decodes each chip
    file once, and what it hands out afterwards is what the file holds."""
    from deep_lulc.stages.train import chips_data

    source = read_chips(tiny_chips)
    decoded: list[str] = []

    def counting(record: ChipRecord) -> tuple[np.ndarray, np.ndarray]:
        decoded.append(record.image)
        return read_chip(record)

    monkeypatch.setattr(chips_data, "read_chip", counting)
    mean, std = source.input_statistics("single-date")
    records = list(source.records)
    dataset = ChipDataset(records, mode="single-date", n_dates=len(source.dates), mean=mean, std=std, augment=False)
    for _ in range(2):  # two epochs
        for index in range(len(dataset)):
            image, label = dataset.sample(index)
            chip, date = divmod(index, len(source.dates))
            raw, expected_label = read_chip(records[chip])
            per_date = raw.shape[0] // len(source.dates)
            expected = np.nan_to_num((raw[date * per_date : (date + 1) * per_date] - dataset.mean) / dataset.std)
            np.testing.assert_array_equal(image, expected.astype(np.float32))
            np.testing.assert_array_equal(label, expected_label)
            label[0, 0] = 99  # a caller may write to what it got without touching the cache
    assert sorted(decoded) == sorted(record.image for record in records)

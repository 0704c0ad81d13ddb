"""The model folder `train` publishes (weights, config, metrics, plots, history) and the numbers the run
reports; the file names and asset descriptions are the model product's (`ModelFolder`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from deep_lulc.shared.io.plots import confusion_png, loss_png
from deep_lulc.shared.models.architectures import ArchitectureSpec
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.model import AssetSpec, ModelFolder, model_id
from deep_lulc.stages.train.fitting import Fitted
from deep_lulc.stages.train.params import TrainParams

HISTORY_COLUMNS = ["epoch", "train_loss", "valid_loss", "miou", "seconds"]


def model_identifier(params: TrainParams, spec: ArchitectureSpec, config: ModelConfig) -> str:
    """Named by what was trained (`model.model_id`): two different models never share a folder or an id."""
    name = f"{params.encoder_name}-{params.input_mode}" if "encoder" in spec.options else params.architecture
    training = params.model_dump_json(exclude={"overwrite"})
    return model_id(name, config=config.to_json(), training=training)


def pretrained_source(params: TrainParams) -> str | None:
    """Where the starting weights came from: a weights file beats ImageNet; None: trained from scratch."""
    if params.use_pretrained and not params.weights:
        return "ImageNet (torchvision)"
    return params.weights if params.weights else None


def training_report(
    params: TrainParams,
    chips: dict[str, Any],
    maps: dict[str, Any],
    baseline: dict[str, Any] | None,
    training_seconds: float,
) -> dict[str, Any]:
    """metrics.json: the map-level scores first among equals, the chip-level and baseline beside them."""
    return {
        "architecture": params.architecture,
        "unet": chips,
        "map": maps["validated"],
        "map_by_window": maps["by_window"],
        "baseline": baseline,
        "comparison": _comparison(chips, baseline),
        "training_seconds": training_seconds,
    }


def write_model_folder(
    folder: ModelFolder, fitted: Fitted, config: ModelConfig, report: dict[str, Any]
) -> dict[str, AssetSpec]:
    """Every file of the model, readable by everyone; returns their assets for the model item."""
    folder.path.mkdir(parents=True)
    weights_name = fitted.save(folder.path)
    folder.config.write_text(config.to_json() + "\n")
    folder.metrics.write_text(json.dumps(report, indent=2) + "\n")
    confusion_png(report["map"], folder.confusion_matrix)
    if fitted.history:
        loss_png(fitted.history, folder.loss)
        with folder.history.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
            writer.writeheader()
            writer.writerows(fitted.history)
    readable_by_everyone(folder.path)
    return folder.assets(
        weights=weights_name, media_type=fitted.media_type, title=fitted.title, history=bool(fitted.history)
    )


def readable_by_everyone(folder: Path) -> None:
    """Mode 0644 on every file of the model: a restrictive umask (pods often run with 077) must not make the
    published weights unreadable to the predict pods or the users that copy them."""
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)


def result_extra(fitted: Fitted, report: dict[str, Any]) -> dict[str, Any]:
    """The run's headline numbers for the result line: the map's, with the chips' and the baseline's."""
    validated = report["map"]
    baseline = report["baseline"]
    return {
        "architecture": report["architecture"],
        "miou": validated["miou"],
        "seed_metric": validated["seed_metric"],
        "iou": {name: value["iou"] for name, value in validated["per_class"].items() if value["support"]},
        "chip_miou": report["unet"]["miou"],
        "baseline_miou": baseline["miou"] if baseline else None,
        "epochs_run": fitted.epochs_run,
        "resumed_after_epoch": fitted.resumed_after_epoch,
        "training_seconds": report["training_seconds"],
    }


def _comparison(unet: dict[str, Any], baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, values in unet["per_class"].items():
        if not values["support"]:
            continue
        rows.append(
            {
                "class": name,
                "unet_iou": values["iou"],
                "baseline_iou": baseline["per_class"][name]["iou"] if baseline else None,
            }
        )
    return rows

"""`deep-lulc train`: fit the U-Net on the chips, score it honestly, publish it as an MLM model item."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader

from deep_lulc.shared import storage
from deep_lulc.shared.contract import StageResult, finish_single_item_output
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.publish import staged_output
from deep_lulc.shared.reruns import idempotent
from deep_lulc.stages.train.baseline import lightgbm_baseline
from deep_lulc.stages.train.chips_data import ChipDataset, load_chips
from deep_lulc.stages.train.evaluation import validation_metrics
from deep_lulc.stages.train.fitting import BEST, FitPlan, fit, pick_device
from deep_lulc.stages.train.losses import make_loss
from deep_lulc.stages.train.model_item import SAFETENSORS_MEDIA_TYPE, model_item
from deep_lulc.stages.train.network import ModelConfig, build_network, count_parameters, load_weights, save_weights
from deep_lulc.stages.train.params import TrainParams
from deep_lulc.stages.train.plots import confusion_png, loss_png

STAGE = "train"
log = logging.getLogger(__name__)


def checkpoint_folder(output: str) -> Path:
    """Beside a local output (so `--resume` finds it); for object storage, a local folder keyed by the prefix."""
    if storage.scheme_of(output) == "file":
        return Path(storage.normalize_href(output)) / "checkpoints"
    digest = hashlib.sha256(output.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "deep-lulc-checkpoints" / digest


@idempotent(STAGE)
def run(*, inputs: Mapping[str, str], output: str, params: TrainParams) -> StageResult:
    """Train on `inputs['chips']` and write the model item to `output`."""
    if "chips" not in inputs:
        raise BadInputError("missing input 'chips'", fix="pass --chips HREF (the chips stage's catalog.json)")
    device = pick_device(params.device)
    torch.manual_seed(params.seed)
    np.random.seed(params.seed)
    source = load_chips(inputs["chips"], mode=params.input_mode)
    train_records, valid_records = source.split("train"), source.split("validation")
    if not train_records or not valid_records:
        raise BadInputError(
            f"chips hold {len(train_records)} training and {len(valid_records)} validation chips",
            fix="rebuild the chips with --val-fraction between 0 and 1 and enough --count",
        )
    mean, std = source.input_statistics(params.input_mode)
    config = ModelConfig(
        encoder=params.encoder,
        n_in=len(source.channels) if params.input_mode == "stack" else len(source.features),
        n_out=max(source.scheme.values) + 1,
        chip_size=source.chip_size,
        input_mode=params.input_mode,
        channels=list(source.channels) if params.input_mode == "stack" else list(source.features),
        features=list(source.features),
        dates=list(source.dates),
        mean=[round(float(v), 6) for v in mean],
        std=[round(float(v), 6) for v in std],
        class_values=source.scheme.values,
        class_names=[c.name for c in source.scheme.classes],
        nodata=source.scheme.nodata,
    )
    model = build_network(config, pretrained=params.pretrained and not params.resume, weights_file=params.weights)
    log.info("%s U-Net, %d inputs, %d parameters, on %s", params.encoder, config.n_in, count_parameters(model), device)
    n_dates = len(source.dates)
    datasets = {
        split: ChipDataset(records, mode=params.input_mode, n_dates=n_dates, mean=mean, std=std, augment=augment,
                           seed=params.seed)
        for split, records, augment in (("train", train_records, True), ("validation", valid_records, False))
    }  # fmt: skip
    dls = DataLoaders(
        DataLoader(
            datasets["train"], bs=params.batch_size, shuffle=True, drop_last=len(datasets["train"]) > params.batch_size
        ),
        DataLoader(datasets["validation"], bs=params.batch_size),
        device=device,
    )
    loss = make_loss(params.loss, source.class_counts["train"], config.n_out).to(device)
    checkpoints = checkpoint_folder(output)
    plan = FitPlan(
        epochs=params.epochs,
        lr=None if params.lr == "auto" else float(params.lr),
        pretrained=params.pretrained or params.weights is not None,
        patience=params.patience,
        device=device,
    )
    state, lr = fit(model, dls, loss, n_out=config.n_out, plan=plan, checkpoints=checkpoints, resume=params.resume)
    load_weights(model, checkpoints / BEST)
    model = model.to(device)
    metrics = validation_metrics(model, valid_records, datasets["validation"], config, device)
    metrics |= {"best_epoch": state.best_epoch, "epochs_run": state.epochs_done, "lr": lr}
    labelled = [c for c in source.scheme.classes if c.value != source.scheme.nodata]
    baseline: dict[str, Any] | None = None
    if params.baseline == "lightgbm":
        baseline = lightgbm_baseline(
            train_records, valid_records, values=[c.value for c in labelled], names=[c.name for c in labelled],
            seed=params.seed,
        )  # fmt: skip
    identifier = (
        f"model-{params.encoder}-{params.input_mode}-{hashlib.sha256(config.to_json().encode()).hexdigest()[:8]}"
    )

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        save_weights(model.cpu(), folder / "model.safetensors")
        (folder / "model-config.json").write_text(config.to_json() + "\n")
        report = {"unet": metrics, "baseline": baseline, "comparison": _comparison(metrics, baseline)}
        (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        confusion_png(metrics, folder / "confusion_matrix.png")
        loss_png(state.history, folder / "loss.png")
        with (folder / "history.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["epoch", "train_loss", "valid_loss", "miou", "seconds"])
            writer.writeheader()
            writer.writerows(state.history)
        assets = {
            "weights": (folder / "model.safetensors", SAFETENSORS_MEDIA_TYPE, "U-Net weights (safetensors)",
                        ["mlm:model", "mlm:weights", "data"]),
            "config": (folder / "model-config.json", "application/json", "Network and input configuration",
                       ["metadata"]),
            "metrics": (folder / "metrics.json", "application/json", "Validation metrics", ["metadata"]),
            "confusion_matrix": (folder / "confusion_matrix.png", "image/png", "Confusion matrix",
                                 ["overview", "visual"]),
            "history": (folder / "history.csv", "text/csv", "Loss and mIoU per epoch", ["metadata"]),
            "loss": (folder / "loss.png", "image/png", "Loss curves", ["overview", "visual"]),
        }  # fmt: skip
        item = model_item(
            identifier,
            config=config,
            scheme=source.scheme,
            bbox=source.bbox,
            temporal=source.temporal,
            parameters=count_parameters(model),
            pretrained_source="ImageNet (torchvision)" if params.pretrained and not params.weights
            else (params.weights if params.weights else None),
            device=device,
            batch_size=params.batch_size,
            hyperparameters={"epochs": params.epochs, "lr": lr, "loss": params.loss, "batch_size": params.batch_size,
                             "seed": params.seed},
            assets=assets,
            chips_href=source.collection_href,
        )  # fmt: skip
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="model",
            description=f"Deep LULC model {identifier}",
            stage=STAGE,
            inputs=inputs,
            params=params,
        )
    per_class_iou = {name: value["iou"] for name, value in metrics["per_class"].items() if value["support"]}
    return StageResult(
        stage=STAGE,
        catalog=catalog_href,
        items=(identifier,),
        extra={
            "miou": metrics["miou"],
            "seed_metric": metrics["seed_metric"],
            "iou": per_class_iou,
            "baseline_miou": baseline["miou"] if baseline else None,
            "epochs_run": state.epochs_done,
        },
    )


def _comparison(unet: dict[str, Any], baseline: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, values in unet["per_class"].items():
        if not values["support"]:
            continue
        rows.append(
            {"class": name, "unet_iou": values["iou"],
             "baseline_iou": baseline["per_class"][name]["iou"] if baseline else None}
        )  # fmt: skip
    return rows

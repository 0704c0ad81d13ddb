"""`deep-lulc train`: fit the U-Net on the chips, score it honestly, publish it as an MLM model item."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from torch import nn

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.plots import confusion_png, loss_png
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.models import architectures
from deep_lulc.shared.models.devices import pick_device
from deep_lulc.shared.models.networks import ModelConfig, build_network, count_parameters, load_weights, save_weights
from deep_lulc.shared.models.pixel_classifier import (
    N_ESTIMATORS,
    TRAIN_PIXELS,
    PixelClassifier,
    fit_lightgbm,
    sample_pixels,
)
from deep_lulc.shared.products.chips import ChipRecord, ChipSet, read_chips
from deep_lulc.shared.products.model import CONFIG_NAME, LIGHTGBM_MEDIA_TYPE, SAFETENSORS_MEDIA_TYPE, model_item
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.shared.version import __version__
from deep_lulc.stages.train.baseline import lightgbm_baseline
from deep_lulc.stages.train.checkpoints import Checkpoints, resume_point
from deep_lulc.stages.train.chips_data import PIXEL_BATCH, ChipDataset, PixelDataset, balanced_weights
from deep_lulc.stages.train.evaluation import validation_metrics
from deep_lulc.stages.train.fitting import BalancedLoader, FitPlan, fit, seed_everything
from deep_lulc.stages.train.losses import make_loss
from deep_lulc.stages.train.map_validation import map_metrics
from deep_lulc.stages.train.params import TrainInputs, TrainParams

STAGE = "train"
log = logging.getLogger(__name__)
CHIP_MAP_TOLERANCE = 0.05  # chip and map mIoU further apart than this: the chips do not tell the truth
WINDOW_TOLERANCE = 0.03  # map mIoU at the chip-sized and the default window further apart: window-sensitive


def readable_by_everyone(folder: Path) -> None:
    """Mode 0644 on every file of the model: a restrictive umask (pods often run with 077) must not make the
    published weights unreadable to the predict pods or the users that copy them."""
    for path in folder.iterdir():
        if path.is_file():
            path.chmod(0o644)


def request_fingerprint(
    inputs: TrainInputs, params: TrainParams, config: ModelConfig, records: list[ChipRecord]
) -> str:
    """What makes two runs the same training: the version, the inputs, every param that shapes training
    (not --resume, --overwrite or --device), the chips' statistics and their ids and sizes."""
    document = {
        "version": __version__,
        "inputs": {name: storage.redact(storage.normalize_href(href)) for name, href in sorted(inputs.hrefs().items())},
        "params": params.model_dump(mode="json", exclude={"resume", "overwrite", "device"}),
        "config": json.loads(config.to_json()),
        "chips": [[r.item_id, r.split, r.image_size, r.label_size] for r in records],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


@idempotent(STAGE)
def run(*, inputs: TrainInputs, output: str, params: TrainParams) -> StageResult:
    """Train on `inputs.chips` and write the model item to `output`."""
    device = pick_device(params.device)
    spec = architectures.spec(params.architecture)
    if not spec.network and device.type == "cuda" and params.device == "cuda":
        raise BadInputError(
            f"--device cuda needs a network; {params.architecture} runs on the CPU", fix="use --device auto or cpu"
        )
    seed_everything(params.seed)
    source = read_chips(inputs.chips)
    train_records, valid_records = source.split("train"), source.split("validation")
    if not train_records or not valid_records:
        raise BadInputError(
            f"chips hold {len(train_records)} training and {len(valid_records)} validation chips",
            fix="rebuild the chips with --val-fraction between 0 and 1 and enough --count",
        )
    mean, std = source.input_statistics(params.input_mode)
    stacked = params.input_mode == "stack"
    config = ModelConfig(
        encoder=params.encoder_name if "encoder" in spec.options else params.architecture,
        n_in=len(source.channels) if stacked else len(source.features),
        n_out=max(source.scheme.values) + 1,
        chip_size=source.chip_size,
        input_mode=params.input_mode,
        channels=list(source.channels) if stacked else list(source.features),
        features=list(source.features),
        dates=list(source.dates),
        mean=[round(float(v), 6) for v in mean],
        std=[round(float(v), 6) for v in std],
        class_values=source.scheme.values,
        class_names=[c.name for c in source.scheme.classes],
        nodata=source.scheme.nodata,
        architecture=params.architecture,
        window=DEFAULT_WINDOW,
        overlap=DEFAULT_OVERLAP,
    )
    n_dates = len(source.dates)
    datasets = {
        split: ChipDataset(
            records, mode=params.input_mode, n_dates=n_dates, mean=mean, std=std, augment=augment, seed=params.seed
        )
        for split, records, augment in (("train", train_records, True), ("validation", valid_records, False))
    }
    started = time.perf_counter()
    if not spec.network:
        fitted = _fit_pixel_classifier(datasets["train"], config, seed=params.seed)
    else:
        fingerprint = request_fingerprint(inputs, params, config, [*train_records, *valid_records])
        fitted = _fit_network(params, config, datasets, source, device=device, output=output, fingerprint=fingerprint)
    training_seconds = round(time.perf_counter() - started, 2)
    if fitted.output_values is not None:
        config = dataclasses.replace(config, output_values=fitted.output_values)
    metrics = validation_metrics(fitted.predictor, valid_records, datasets["validation"], config, device)
    metrics |= {
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "lr": fitted.lr,
        "level": "validation chips",
    }
    maps = _validate_maps(fitted.predictor, source, valid_records, config, device)
    labelled = [c for c in source.scheme.classes if c.value != source.scheme.nodata]
    baseline: dict[str, Any] | None = None
    if params.baseline == "lightgbm":
        baseline = lightgbm_baseline(
            train_records,
            valid_records,
            values=[c.value for c in labelled],
            names=[c.name for c in labelled],
            seed=params.seed,
        )
    digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:8]
    identifier = (
        f"model-{params.encoder_name}-{params.input_mode}-{digest}"
        if "encoder" in spec.options
        else f"model-{params.architecture}-{digest}"
    )

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        weights_name = fitted.save(folder)
        (folder / CONFIG_NAME).write_text(config.to_json() + "\n")
        report = {
            "architecture": params.architecture,
            "unet": metrics,
            "map": maps["validated"],
            "map_by_window": maps["by_window"],
            "baseline": baseline,
            "comparison": _comparison(metrics, baseline),
            "training_seconds": training_seconds,
        }
        (folder / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
        confusion_png(maps["validated"], folder / "confusion_matrix.png")
        assets = {
            "weights": (folder / weights_name, fitted.media_type, fitted.title, ["mlm:model", "mlm:weights", "data"]),
            "config": (folder / CONFIG_NAME, "application/json", "Network and input configuration", ["metadata"]),
            "metrics": (
                folder / "metrics.json",
                "application/json",
                "Validation metrics (maps and chips)",
                ["metadata"],
            ),
            "confusion_matrix": (
                folder / "confusion_matrix.png",
                "image/png",
                "Confusion matrix of the validation blocks predicted as maps",
                ["overview", "visual"],
            ),
        }
        if fitted.history:
            loss_png(fitted.history, folder / "loss.png")
            with (folder / "history.csv").open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["epoch", "train_loss", "valid_loss", "miou", "seconds"])
                writer.writeheader()
                writer.writerows(fitted.history)
            assets["history"] = (folder / "history.csv", "text/csv", "Loss and chip mIoU per epoch", ["metadata"])
            assets["loss"] = (folder / "loss.png", "image/png", "Loss curves", ["overview", "visual"])
        readable_by_everyone(folder)
        item = model_item(
            identifier,
            config=config,
            scheme=source.scheme,
            bbox=source.bbox,
            temporal=source.temporal,
            parameters=fitted.parameters,
            pretrained_source="ImageNet (torchvision)"
            if params.use_pretrained and not params.weights
            else (params.weights if params.weights else None),
            device=device,
            batch_size=params.batch_size,
            hyperparameters=fitted.hyperparameters,
            assets=assets,
            chips_href=source.collection_href,
            validation=_validation_summary(maps["validated"], metrics),
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="model",
            description=f"Deep LULC model {identifier}",
            stage=STAGE,
            inputs=inputs,
            params=params.model_copy(update={"lr": fitted.lr}) if fitted.lr is not None else params,
        )
    validated = maps["validated"]
    per_class_iou = {name: value["iou"] for name, value in validated["per_class"].items() if value["support"]}
    extra = {
        "architecture": params.architecture,
        "miou": validated["miou"],
        "seed_metric": validated["seed_metric"],
        "iou": per_class_iou,
        "chip_miou": metrics["miou"],
        "baseline_miou": baseline["miou"] if baseline else None,
        "epochs_run": fitted.epochs_run,
        "resumed_after_epoch": fitted.resumed_after_epoch,
        "training_seconds": training_seconds,
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)


@dataclass
class Fitted:
    """A trained model behind the network interface, and how to store it."""

    predictor: nn.Module
    save: Callable[[Path], str]  # writes the weights into a folder, returns the file name
    media_type: str
    title: str
    parameters: int
    hyperparameters: dict[str, Any]
    lr: float | None = None
    best_epoch: int | None = None
    epochs_run: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    output_values: list[int] | None = None
    resumed_after_epoch: int | None = None  # the checkpoint this run continued; None: trained from the start


def _fit_network(
    params: TrainParams,
    config: ModelConfig,
    datasets: dict[str, ChipDataset],
    source: ChipSet,
    *,
    device: torch.device,
    output: str,
    fingerprint: str,
) -> Fitted:
    checkpoints = Checkpoints.beside(output)
    # --overwrite redoes the work: only an explicit --resume continues a checkpoint then
    mode = params.resume if params.resume is not None or not params.overwrite else False
    resumed = resume_point(checkpoints, fingerprint, mode=mode)
    resumed_after = resumed.epochs_done if resumed is not None else None
    model = build_network(config, pretrained=params.use_pretrained and resumed is None, weights_file=params.weights)
    log.info(
        "%s, %d inputs, %d parameters, on %s",
        config.spec.title.format(encoder=config.encoder),
        config.n_in,
        count_parameters(model),
        device,
    )
    train_set: ChipDataset | PixelDataset = datasets["train"]
    valid_set: ChipDataset | PixelDataset = datasets["validation"]
    batch = params.batch_size
    if config.spec.samples == "pixels":  # every labelled pixel once an epoch; the loss balances the classes
        mean, std = np.asarray(config.mean), np.asarray(config.std)
        train_set, valid_set = (
            PixelDataset(
                datasets[split].records,
                mean=mean,
                std=std,
                seed=params.seed,
                labelled=sum(source.class_counts[split].values()),
            )
            for split in ("train", "validation")
        )
        batch *= PIXEL_BATCH
        weights = np.full(len(train_set), 1.0 / max(len(train_set), 1))
        log.info("training on %d labelled pixels, validating on %d", len(train_set), len(valid_set))
    else:
        weights = balanced_weights(datasets["train"].records, nodata=config.nodata)
    if params.input_mode == "single-date":
        weights = np.repeat(weights, len(source.dates)) / len(source.dates)
    dls = DataLoaders(
        BalancedLoader(
            train_set,
            weights=weights,
            seed=params.seed,
            bs=batch,
            shuffle=True,
            drop_last=len(train_set) > batch,
            num_workers=0,
        ),
        DataLoader(valid_set, bs=batch, num_workers=0),
        device=device,
    )
    loss = make_loss(params.loss, source.class_counts["train"], config.n_out).to(device)
    epochs = params.epochs_for(max(1, len(train_set) // batch))
    plan = FitPlan(
        epochs=epochs,
        lr=params.peak_lr(),
        pretrained=params.use_pretrained or params.weights is not None,
        # A model published from the schedule's end trains the whole schedule: no early stop mid-way.
        patience=params.patience if config.spec.keep == "best" else epochs + 1,
        device=device,
    )
    try:
        state, lr = fit(
            model,
            dls,
            loss,
            n_out=config.n_out,
            plan=plan,
            checkpoints=checkpoints,
            state=resumed,
            fingerprint=fingerprint,
        )
    except BaseException:  # a run that failed before its first checkpoint leaves no empty folder behind
        checkpoints.remove_if_empty()
        raise
    load_weights(model, checkpoints.folder / state.weights(config.spec.keep))
    model = model.to(device).eval()

    def save(folder: Path) -> str:
        save_weights(model.cpu(), folder / "model.safetensors")
        model.to(device)
        return "model.safetensors"

    return Fitted(
        predictor=model,
        save=save,
        media_type=SAFETENSORS_MEDIA_TYPE,
        title=f"{params.architecture} weights (safetensors)",
        parameters=count_parameters(model),
        hyperparameters={
            "architecture": params.architecture,
            "epochs": epochs,
            "lr": lr,
            "loss": params.loss,
            "batch_size": params.batch_size,
            "seed": params.seed,
            "sampling": config.spec.sampling,
            "augmentation": config.spec.augmentation,
        },
        lr=lr,
        best_epoch=state.best_epoch,
        epochs_run=state.epochs_done,
        history=state.history,
        resumed_after_epoch=resumed_after,
    )


def _fit_pixel_classifier(train_set: ChipDataset, config: ModelConfig, *, seed: int) -> Fitted:
    """LightGBM on normalised training pixels: the same inputs a network sees, so predict feeds both alike."""
    samples = [train_set.sample(index) for index in range(len(train_set))]
    x, y = sample_pixels(
        [image for image, _ in samples],
        [label for _, label in samples],
        nodata=config.nodata,
        limit=TRAIN_PIXELS,
        seed=seed,
    )
    booster = fit_lightgbm(x, y, seed=seed)
    text = str(booster.model_to_string())
    values = sorted(int(v) for v in np.unique(y))
    predictor = PixelClassifier(text, class_values=values, n_out=config.n_out)
    log.info("LightGBM pixel classifier: %d training pixels, %d trees", len(y), booster.num_trees())

    def save(folder: Path) -> str:
        (folder / "model.txt").write_text(text)
        return "model.txt"

    return Fitted(
        predictor=predictor,
        save=save,
        media_type=LIGHTGBM_MEDIA_TYPE,
        title="LightGBM model (text format)",
        parameters=int(booster.num_trees()),
        hyperparameters={
            "architecture": "lightgbm",
            "n_estimators": N_ESTIMATORS,
            "learning_rate": 0.1,
            "num_leaves": 31,
            "class_weight": "balanced",
            "training_pixels": len(y),
            "seed": seed,
        },
        output_values=values,
    )


def _validate_maps(
    predictor: nn.Module, source: ChipSet, records: list[ChipRecord], config: ModelConfig, device: torch.device
) -> dict[str, Any]:
    """The validation blocks as maps at predict's default window and at the chip size; warn on a gap."""
    if source.features_href is None:
        raise BadInputError(
            "the chips collection has no derived_from link to its features",
            fix="rebuild the chips with `deep-lulc chips`",
        )
    small = max(32, 32 * (config.chip_size // 32))
    windows = [(DEFAULT_WINDOW, DEFAULT_OVERLAP), (small, small // 4)]
    results = map_metrics(
        predictor, features_href=source.features_href, records=records, config=config, device=device, windows=windows
    )
    validated = results[windows[0]]
    by_window = {f"{size}/{overlap}": result["miou"] for (size, overlap), result in results.items()}
    spread = abs((validated["miou"] or 0.0) - (results[windows[1]]["miou"] or 0.0))
    if spread > WINDOW_TOLERANCE:
        log.warning(
            "validation map mIoU differs by %.3f between %d px and %d px windows (%s)",
            spread,
            windows[0][0],
            windows[1][0],
            by_window,
        )
    return {"validated": validated, "by_window": by_window}


def _validation_summary(validated: dict[str, Any], chips: dict[str, Any]) -> dict[str, Any]:
    gap = abs((validated["miou"] or 0.0) - (chips["miou"] or 0.0))
    if gap > CHIP_MAP_TOLERANCE:
        log.warning(
            "validation mIoU on chips (%.3f) and on maps (%.3f) differ by %.3f: trust the map's",
            chips["miou"] or 0.0,
            validated["miou"] or 0.0,
            gap,
        )
    return {
        "window": validated["window"],
        "overlap": validated["overlap"],
        "map_miou": validated["miou"],
        "chip_miou": chips["miou"],
        "pixels": validated["pixels"],
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

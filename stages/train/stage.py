"""`deep-lulc train`: fit the U-Net on the chips, score it honestly, publish it as an MLM model item."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from torch import nn

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW
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
from deep_lulc.shared.products.chips import TRAIN, VALIDATION, ChipRecord, ChipSet, read_chips
from deep_lulc.shared.products.model import LIGHTGBM_MEDIA_TYPE, SAFETENSORS_MEDIA_TYPE, ModelFolder, model_item
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.train.baseline import requested_baseline
from deep_lulc.stages.train.checkpoints import Checkpoints, resume_point
from deep_lulc.stages.train.chips_data import PIXEL_BATCH, ChipDataset, PixelDataset, balanced_weights
from deep_lulc.stages.train.evaluation import chip_metrics
from deep_lulc.stages.train.fitting import BalancedLoader, FitPlan, Fitted, fit, seed_everything
from deep_lulc.stages.train.losses import make_loss
from deep_lulc.stages.train.map_validation import map_metrics
from deep_lulc.stages.train.params import TrainInputs, TrainParams
from deep_lulc.stages.train.preparation import (
    check_device,
    chip_datasets,
    model_config,
    request_fingerprint,
    training_splits,
)
from deep_lulc.stages.train.publishing import (
    model_identifier,
    pretrained_source,
    result_extra,
    training_report,
    write_model_folder,
)

STAGE = "train"
log = logging.getLogger(__name__)
CHIP_MAP_TOLERANCE = 0.05  # chip and map mIoU further apart than this: the chips do not tell the truth
WINDOW_TOLERANCE = 0.03  # map mIoU at the chip-sized and the default window further apart: window-sensitive


@idempotent(STAGE)
def run(*, inputs: TrainInputs, output: str, params: TrainParams) -> StageResult:
    """Train on `inputs.chips` and write the model item to `output`."""
    device = pick_device(params.device)
    spec = architectures.spec(params.architecture)
    check_device(params, spec, device)
    seed_everything(params.seed)
    source = read_chips(inputs.chips)
    train_records, valid_records = training_splits(source)
    config = model_config(source, params, spec)
    datasets = chip_datasets(source, params, train_records, valid_records)

    started = time.perf_counter()
    if not spec.network:
        fitted = _fit_pixel_classifier(datasets[TRAIN], config, seed=params.seed)
    else:
        fingerprint = request_fingerprint(inputs, params, config, [*train_records, *valid_records])
        fitted = _fit_network(params, config, datasets, source, device=device, output=output, fingerprint=fingerprint)
    training_seconds = round(time.perf_counter() - started, 2)
    if fitted.output_values is not None:
        config = dataclasses.replace(config, output_values=fitted.output_values)
    metrics = chip_metrics(fitted, valid_records, datasets[VALIDATION], config, device)
    maps = _validate_maps(fitted.predictor, source, valid_records, config, device)
    baseline = requested_baseline(params.baseline, train_records, valid_records, scheme=source.scheme, seed=params.seed)
    identifier = model_identifier(params, spec, config)

    with staged_output(output) as staged:
        report = training_report(params, metrics, maps, baseline, training_seconds)
        assets = write_model_folder(ModelFolder(staged.path / identifier), fitted, config, report)
        item = model_item(
            identifier,
            config=config,
            scheme=source.scheme,
            bbox=source.bbox,
            temporal=source.temporal,
            parameters=fitted.parameters,
            pretrained_source=pretrained_source(params),
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
            catalog_id=identifier,
            description=f"Deep LULC model {identifier}",
            stage=STAGE,
            inputs=inputs,
            params=params.model_copy(update={"lr": fitted.lr}) if fitted.lr is not None else params,
        )
    return StageResult.of_item(STAGE, catalog_href, identifier, result_extra(fitted, report))


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
    train_set: ChipDataset | PixelDataset = datasets[TRAIN]
    valid_set: ChipDataset | PixelDataset = datasets[VALIDATION]
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
            for split in (TRAIN, VALIDATION)
        )
        batch *= PIXEL_BATCH
        weights = np.full(len(train_set), 1.0 / max(len(train_set), 1))
        log.info("training on %d labelled pixels, validating on %d", len(train_set), len(valid_set))
    else:
        weights = balanced_weights(datasets[TRAIN].records, nodata=config.nodata)
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
    loss = make_loss(params.loss, source.class_counts[TRAIN], config.n_out).to(device)
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

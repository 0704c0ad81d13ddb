"""Validation predictions and the metrics reported with the model (the same functions `evaluate` uses)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from deep_lulc.shared.lulc.metrics import confusion_matrix, scores
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.chips import ChipRecord
from deep_lulc.stages.train.chips_data import ChipDataset
from deep_lulc.stages.train.fitting import Fitted


@torch.no_grad()
def predict_chip(model: nn.Module, dataset: ChipDataset, chip: int, device: torch.device) -> np.ndarray:
    """Class values for one chip; single-date models average their per-date probabilities."""
    samples = range(chip * dataset.n_dates, (chip + 1) * dataset.n_dates) if dataset.mode == "single-date" else [chip]
    images = torch.stack([torch.from_numpy(dataset.sample(i)[0]) for i in samples]).to(device)
    logits = model(images).float()
    logits[:, 0] = -torch.inf
    probabilities = torch.softmax(logits, dim=1).mean(dim=0)
    return np.asarray(probabilities.argmax(dim=0).cpu().numpy(), dtype=np.uint8)


def validation_metrics(
    model: nn.Module, records: list[ChipRecord], dataset: ChipDataset, config: ModelConfig, device: torch.device
) -> dict[str, Any]:
    model.eval()
    truth, predicted = [], []
    for chip in range(len(records)):
        label = dataset.sample(chip * (dataset.n_dates if dataset.mode == "single-date" else 1))[1]
        truth.append(label.astype(np.uint8))
        predicted.append(predict_chip(model, dataset, chip, device))
    labelled = [v for v in config.class_values if v != config.nodata]
    names = [n for v, n in zip(config.class_values, config.class_names, strict=True) if v != config.nodata]
    all_truth = np.concatenate([t.ravel() for t in truth])
    all_predicted = np.concatenate([p.ravel() for p in predicted])
    matrix = confusion_matrix(all_truth, all_predicted, labelled, nodata=config.nodata)
    return scores(matrix, labelled, names)


def chip_metrics(
    fitted: Fitted, records: list[ChipRecord], dataset: ChipDataset, config: ModelConfig, device: torch.device
) -> dict[str, Any]:
    """The validation chips' scores with how training went: the level the loop itself watched."""
    metrics = validation_metrics(fitted.predictor, records, dataset, config, device)
    return metrics | {
        "best_epoch": fitted.best_epoch,
        "epochs_run": fitted.epochs_run,
        "lr": fitted.lr,
        "level": "validation chips",
    }

"""Losses that ignore NoData (label 0) and, but for plain `ce`, weight classes against their imbalance."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from deep_lulc.stages.train.params import LossName

IGNORE = 0


def class_weights(counts: Mapping[str, int], n_out: int) -> torch.Tensor:
    """Inverse square-root frequency of the training histogram, mean 1 over the classes present.

    The square root keeps water and wetland from dominating a loss they would otherwise swamp.
    """
    pixels = np.zeros(n_out)
    for value, count in counts.items():
        if int(value) < n_out:
            pixels[int(value)] = count
    weights = np.zeros(n_out)
    present = pixels > 0
    present[IGNORE] = False
    weights[present] = 1.0 / np.sqrt(pixels[present] / pixels[present].sum())
    if present.any():
        weights[present] /= weights[present].mean()
    return torch.tensor(weights, dtype=torch.float32)


class WeightedCrossEntropy(nn.Module):
    weights: torch.Tensor

    def __init__(self, weights: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weights", weights if weights is not None else torch.empty(0))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weights = self.weights if self.weights.numel() else None
        return F.cross_entropy(logits.float(), target, weight=weights, ignore_index=IGNORE)


class FocalLoss(nn.Module):
    """Cross-entropy down-weighted on easy pixels by (1 - p)^gamma, with class weights."""

    weights: torch.Tensor

    def __init__(self, weights: torch.Tensor, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weights", weights)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)
        valid = target != IGNORE
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_pt = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
        focal = -((1 - log_pt.exp()) ** self.gamma) * log_pt * self.weights[safe]
        return focal[valid].sum() / self.weights[safe][valid].sum().clamp_min(1e-6)


class DiceCrossEntropy(nn.Module):
    """Weighted cross-entropy plus soft Dice over the labelled pixels: Dice is blind to class frequency."""

    present: torch.Tensor

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.ce = WeightedCrossEntropy(weights)
        self.register_buffer("present", weights > 0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probabilities = F.softmax(logits.float(), dim=1)
        valid = (target != IGNORE).unsqueeze(1).float()
        one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float() * valid
        probabilities = probabilities * valid
        intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
        total = probabilities.sum(dim=(0, 2, 3)) + one_hot.sum(dim=(0, 2, 3))
        dice = 1 - (2 * intersection + 1.0) / (total + 1.0)
        loss: torch.Tensor = self.ce(logits, target) + dice[self.present].mean()
        return loss


def make_loss(name: LossName, counts: Mapping[str, int], n_out: int) -> nn.Module:
    weights = class_weights(counts, n_out)
    if name == "ce":
        return WeightedCrossEntropy(None)
    if name == "weighted-ce":
        return WeightedCrossEntropy(weights)
    if name == "focal":
        return FocalLoss(weights)
    return DiceCrossEntropy(weights)

"""LightGBM as a model of its own: the eo-learn LULC example's pixel classifier, stored as LightGBM's
text model format (no pickle), and wrapped as a module so the sliding-window inference treats it like a
network: it takes the normalised (batch, channels, y, x) input and returns per-class log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

THREADS = 2  # fixed: LightGBM's histograms, and so its trees, depend on the thread count
TRAIN_PIXELS = 100_000
N_ESTIMATORS = 100  # LightGBM's default, as in eo-learn's LULC example


def fit_lightgbm(x: np.ndarray, y: np.ndarray, *, seed: int) -> Any:
    """Class-balanced LightGBM, deterministic for a given seed and thread count; returns the Booster."""
    import lightgbm

    classifier = lightgbm.LGBMClassifier(
        n_estimators=N_ESTIMATORS,
        learning_rate=0.1,
        num_leaves=31,
        class_weight="balanced",
        random_state=seed,
        n_jobs=THREADS,
        deterministic=True,
        verbose=-1,
    )
    classifier.fit(x, y)
    return classifier.booster_


def sample_pixels(
    images: Sequence[np.ndarray], labels: Sequence[np.ndarray], *, nodata: int, limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Labelled pixels of (channels, y, x) images as rows, a seeded random subset when over `limit`."""
    rows, classes = [], []
    for image, label in zip(images, labels, strict=True):
        keep = label.ravel() != nodata
        rows.append(image.reshape(image.shape[0], -1).T[keep])
        classes.append(label.ravel()[keep])
    x, y = np.concatenate(rows), np.concatenate(classes)
    if limit is not None and len(y) > limit:
        pick = np.sort(np.random.default_rng(seed).choice(len(y), size=limit, replace=False))
        x, y = x[pick], y[pick]
    return x, y


class PixelClassifier(nn.Module):
    """A LightGBM booster behind the network interface: (N, C, y, x) tensor in, (N, n_out, y, x) log-probs out."""

    def __init__(self, model_text: str, *, class_values: Sequence[int], n_out: int) -> None:
        super().__init__()
        import lightgbm

        self.booster = lightgbm.Booster(model_str=model_text)
        self.class_values = [int(v) for v in class_values]  # booster output column -> class value
        self.n_out = n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        rows = x.detach().float().cpu().permute(0, 2, 3, 1).reshape(-1, channels).numpy()
        probabilities = np.asarray(self.booster.predict(rows, num_threads=THREADS), dtype=np.float32)
        if probabilities.ndim == 1:  # a binary booster answers one column
            probabilities = np.stack([1 - probabilities, probabilities], axis=1)
        logits = np.full((rows.shape[0], self.n_out), -1e4, dtype=np.float32)
        logits[:, self.class_values] = np.log(np.maximum(probabilities, 1e-7))
        out = torch.from_numpy(logits).reshape(batch, height, width, self.n_out).permute(0, 3, 1, 2)
        return out.to(x.device)

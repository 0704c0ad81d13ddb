"""Training chips as tensors: normalised, augmented, NoData kept as label 0."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from deep_lulc.shared.products.chips import ChipRecord, read_chip, read_label
from deep_lulc.stages.train.params import InputMode

# Decoded chips a dataset keeps in memory. Single-date mode draws each chip once per date and every epoch
# draws every chip again: without the cache each draw decoded (and re-verified) the whole file.
CACHE_BYTES = 1 << 30


def balanced_weights(records: list[ChipRecord], *, nodata: int) -> np.ndarray:
    """A sampling weight per chip: the mean over its labelled pixels of 1/sqrt(class frequency), so chips
    holding water, wetland or bare land are drawn more often without repeating one chip endlessly."""
    labels = [read_label(record) for record in records]
    counts = np.bincount(np.concatenate([label.ravel() for label in labels]), minlength=256).astype(np.float64)
    counts[nodata] = 0
    rarity = np.zeros(256)
    present = counts > 0
    rarity[present] = 1.0 / np.sqrt(counts[present] / counts.sum())
    weights = np.array([rarity[label[label != nodata]].mean() if (label != nodata).any() else 0.0 for label in labels])
    if weights.sum() <= 0:
        return np.full(len(records), 1.0 / max(len(records), 1))
    weights = np.maximum(weights, 1e-3 * weights.max())
    return np.asarray(weights / weights.sum())


class ChipDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Stack: one sample per chip. Single-date: one sample per chip and date, as the seed trained."""

    def __init__(
        self,
        records: list[ChipRecord],
        *,
        mode: InputMode,
        n_dates: int,
        mean: np.ndarray,
        std: np.ndarray,
        augment: bool,
        seed: int = 0,
    ) -> None:
        self.records = records
        self.mode = mode
        self.n_dates = n_dates
        self.mean = mean.astype(np.float32)[:, None, None]
        self.std = np.maximum(std.astype(np.float32), 1e-6)[:, None, None]
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._cached_bytes = 0

    def _chip(self, chip: int) -> tuple[np.ndarray, np.ndarray]:
        """The chip's image and label, decoded once while they fit in `CACHE_BYTES` (read-only once cached)."""
        cached = self._cache.get(chip)
        if cached is not None:
            return cached
        image, label = read_chip(self.records[chip])
        if self._cached_bytes + image.nbytes + label.nbytes <= CACHE_BYTES:
            image.flags.writeable = label.flags.writeable = False
            self._cache[chip] = (image, label)
            self._cached_bytes += image.nbytes + label.nbytes
        return image, label

    def __len__(self) -> int:
        return len(self.records) * (self.n_dates if self.mode == "single-date" else 1)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chip, date = divmod(index, self.n_dates) if self.mode == "single-date" else (index, 0)
        image, label = self._chip(chip)
        if self.mode == "single-date":
            per_date = image.shape[0] // self.n_dates
            image = image[date * per_date : (date + 1) * per_date]
        image = np.nan_to_num((image - self.mean) / self.std, nan=0.0)
        return image.astype(np.float32), label.copy()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.sample(index)
        if self.augment:  # dihedral group: labels do not care which way is north
            k = int(self.rng.integers(0, 4))
            image, label = np.rot90(image, k, axes=(1, 2)), np.rot90(label, k)
            if self.rng.random() < 0.5:
                image, label = image[:, :, ::-1], label[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(label))


PIXEL_BATCH = 32  # pixels per chip of --batch-size: a step of 8 "chips" is 256 labelled pixels
MAX_PIXELS = 1_000_000  # a seeded share of the labelled pixels beyond this (0.8 GB at 207 inputs)


class PixelDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """The labelled pixels of the chips, each once (overlapping chips share pixels), as (channels, 1, 1)
    samples for a per-pixel network: one loss term per labelled pixel, however few chips there are. Large
    AOIs keep each pixel with the same seeded probability, so at most about `limit` pixels are held."""

    def __init__(
        self,
        records: list[ChipRecord],
        *,
        mean: np.ndarray,
        std: np.ndarray,
        labelled: int | None = None,
        limit: int = MAX_PIXELS,
        seed: int = 0,
    ) -> None:
        """`labelled`: the chips' labelled pixel count as recorded (overlaps counted), to thin them as read."""
        self.records = records
        keep_share = min(1.0, limit / labelled) if labelled else 1.0
        rng = np.random.default_rng(seed)
        mean32 = mean.astype(np.float32)
        std32 = np.maximum(std.astype(np.float32), 1e-6)
        seen: set[tuple[int, int]] = set()
        rows: list[np.ndarray] = []
        classes: list[np.ndarray] = []
        for index, record in enumerate(records):
            image, label = read_chip(record)
            row, col, _ = record.window if record.window is not None else (0, index * label.shape[1], 0)
            ys, xs = np.nonzero(label)
            fresh = []
            for k, key in enumerate(zip((ys + row).tolist(), (xs + col).tolist(), strict=True)):
                if key not in seen:
                    seen.add(key)
                    fresh.append(k)
            if keep_share < 1.0:
                fresh = [k for k in fresh if rng.random() < keep_share]
            ys, xs = ys[fresh], xs[fresh]
            rows.append(image[:, ys, xs].T)
            classes.append(label[ys, xs])
        values = np.concatenate(rows) if rows else np.zeros((0, len(mean32)), np.float32)
        self.x = np.nan_to_num((values - mean32) / std32, nan=0.0).astype(np.float32)
        self.y = np.concatenate(classes).astype(np.int64) if classes else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.x[index][:, None, None]), torch.tensor([[self.y[index]]])

"""Training chips from a chips collection, as tensors: normalised, augmented, NoData kept as label 0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import torch
from torch.utils.data import Dataset

from deep_lulc.shared import storage
from deep_lulc.shared.classes import ClassScheme, class_scheme_from_dict
from deep_lulc.shared.cog import open_raster
from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.stac import read_stac
from deep_lulc.stages.train.params import InputMode


@dataclass(frozen=True)
class ChipRecord:
    item_id: str
    image: str
    label: str
    split: str
    window: tuple[int, int, int] | None = None  # (row, col, size) on the features grid


@dataclass(frozen=True)
class ChipsSource:
    """What `train` needs from a chips collection."""

    href: str
    collection_href: str
    records: tuple[ChipRecord, ...]
    channels: tuple[str, ...]  # feature_date names, date-major
    features: tuple[str, ...]
    dates: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    class_counts: dict[str, dict[str, int]]
    scheme: ClassScheme
    chip_size: int
    bbox: list[float]
    temporal: tuple[str, str]
    features_href: str | None = None  # the features item the chips were cut from (map-level validation)

    def split(self, name: str) -> list[ChipRecord]:
        return [r for r in self.records if r.split == name]

    def input_statistics(self, mode: InputMode) -> tuple[np.ndarray, np.ndarray]:
        """Per input channel mean/std: per band for stack; pooled over dates per feature for single-date."""
        if mode == "stack":
            return self.mean, self.std
        mean = self.mean.reshape(len(self.dates), len(self.features))
        std = self.std.reshape(len(self.dates), len(self.features))
        pooled_mean = mean.mean(axis=0)
        pooled_var = (std**2 + mean**2).mean(axis=0) - pooled_mean**2
        return pooled_mean, np.sqrt(np.maximum(pooled_var, 0.0))


def load_chips(href: str, *, mode: InputMode) -> ChipsSource:
    root = read_stac(href)
    collection = root if isinstance(root, pystac.Collection) else None
    if collection is None and isinstance(root, pystac.Catalog):
        collection = next((c for c in root.get_children() if isinstance(c, pystac.Collection)), None)
    fields: dict[str, Any] = collection.extra_fields if collection is not None else {}
    if collection is None or "deep-lulc:channels" not in fields:
        raise BadInputError(
            f"{storage.redact(href)} holds no chips collection",
            fix="pass the catalog.json written by `deep-lulc chips`",
        )
    channels = tuple(fields["deep-lulc:channels"])
    features = tuple(fields["deep-lulc:features"])
    dates = tuple(fields["deep-lulc:dates"])
    expected = tuple(f"{f}_{d}" for d in dates for f in features)
    if channels != expected:
        raise BadInputError(
            f"chips channels ({len(channels)}) are not the features x dates grid {len(features)} x {len(dates)}",
            fix="rebuild the chips with `deep-lulc chips` from a features item",
        )
    if mode == "single-date" and len(dates) < 1:
        raise BadInputError("chips hold no dates", fix="rebuild the chips")
    records = []
    for item in sorted(collection.get_items(), key=lambda i: i.id):
        window = item.properties.get("deep-lulc:window")
        records.append(
            ChipRecord(
                item_id=item.id,
                image=item.assets["image"].get_absolute_href() or "",
                label=item.assets["label"].get_absolute_href() or "",
                split=str(item.properties.get("split")),
                window=(int(window["row"]), int(window["col"]), int(window["size"])) if window else None,
            )
        )
    source_link = collection.get_single_link("derived_from")
    normalization = fields["deep-lulc:normalization"]
    interval = collection.extent.temporal.intervals[0]
    return ChipsSource(
        href=href,
        collection_href=collection.get_self_href() or href,
        records=tuple(records),
        channels=channels,
        features=features,
        dates=dates,
        mean=np.asarray(normalization["mean"], dtype=np.float32),
        std=np.asarray(normalization["std"], dtype=np.float32),
        class_counts=fields["deep-lulc:class_counts"],
        scheme=class_scheme_from_dict(fields["deep-lulc:classes"], source="chips collection"),
        chip_size=int(fields["deep-lulc:chip_size"]),
        bbox=list(collection.extent.spatial.bboxes[0]),
        temporal=(
            interval[0].isoformat().replace("+00:00", "Z") if interval[0] else "",
            interval[1].isoformat().replace("+00:00", "Z") if interval[1] else "",
        ),
        features_href=source_link.get_absolute_href() if source_link is not None else None,
    )


def read_label(record: ChipRecord) -> np.ndarray:
    with open_raster(record.label) as source:
        return np.asarray(source.read(1), dtype=np.int64)


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


def read_chip(record: ChipRecord) -> tuple[np.ndarray, np.ndarray]:
    """Image (bands, y, x) float32 with NaN for nodata, and label (y, x) int64."""
    with open_raster(record.image) as source:
        raw = source.read()
        scales = source.scales
        image = raw.astype(np.float32) * np.asarray(scales, dtype=np.float32)[:, None, None]
        image[raw == source.nodata] = np.nan
    with open_raster(record.label) as source:
        label = source.read(1).astype(np.int64)
    return image, label


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

    def __len__(self) -> int:
        return len(self.records) * (self.n_dates if self.mode == "single-date" else 1)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chip, date = divmod(index, self.n_dates) if self.mode == "single-date" else (index, 0)
        image, label = read_chip(self.records[chip])
        if self.mode == "single-date":
            per_date = image.shape[0] // self.n_dates
            image = image[date * per_date : (date + 1) * per_date]
        image = np.nan_to_num((image - self.mean) / self.std, nan=0.0)
        return image.astype(np.float32), label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.sample(index)
        if self.augment:  # dihedral group: labels do not care which way is north
            k = int(self.rng.integers(0, 4))
            image, label = np.rot90(image, k, axes=(1, 2)), np.rot90(label, k)
            if self.rng.random() < 0.5:
                image, label = image[:, :, ::-1], label[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(label))

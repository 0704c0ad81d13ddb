"""The chips written: windows read in row order through the chunk cache, their files written on threads,
and the pixels counted on the way (labelled pixels per split and class, per-band moments of the training
chips), so the collection's statistics cost no second pass."""

from __future__ import annotations

import json
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pystac
import xarray as xr

from deep_lulc.shared.geo.grids import GeoBox
from deep_lulc.shared.lulc.classes import ClassScheme
from deep_lulc.shared.products.chips import write_chip
from deep_lulc.shared.stage.progress import progress
from deep_lulc.stages.chips.auto import Layout
from deep_lulc.stages.chips.reader import ChunkedWindowReader
from deep_lulc.stages.chips.sampling import TRAIN, VALIDATION, Chip

WRITE_THREADS = max(1, min(4, os.cpu_count() or 1))
WRITE_QUEUE = 2 * WRITE_THREADS


class Tally:
    """Labelled pixels per split and class, and the moments of every band over the training chips."""

    def __init__(self, n_channels: int) -> None:
        self.pixels: dict[str, dict[int, int]] = {TRAIN: {}, VALIDATION: {}}
        self.band_sum = np.zeros(n_channels)
        self.band_sq = np.zeros(n_channels)
        self.band_n = np.zeros(n_channels)

    def add(self, split: str, values: np.ndarray, label: np.ndarray, *, nodata: int) -> None:
        present, pixels = np.unique(label[label != nodata], return_counts=True)
        for value, n in zip(present.tolist(), pixels.tolist(), strict=True):
            self.pixels[split][value] = self.pixels[split].get(value, 0) + n
        if split == TRAIN:
            finite = np.isfinite(values)
            self.band_n += finite.sum(axis=(1, 2))
            self.band_sum += np.where(finite, values, 0.0).sum(axis=(1, 2), dtype=np.float64)
            self.band_sq += np.where(finite, values.astype(np.float64) ** 2, 0.0).sum(axis=(1, 2))

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.band_sum / np.maximum(self.band_n, 1)
        std = np.sqrt(np.maximum(self.band_sq / np.maximum(self.band_n, 1) - mean**2, 0.0))
        return mean, std

    def class_counts(self) -> dict[str, dict[str, int]]:
        """As the collection records them: split -> class value (a string, JSON's keys) -> pixels."""
        return {split: {str(k): v for k, v in sorted(c.items())} for split, c in self.pixels.items()}


def write_chips(
    folder: Path,
    chips: list[Chip],
    features: xr.DataArray,
    labels: np.ndarray,
    *,
    features_item: pystac.Item,
    grid: GeoBox,
    channels: list[str],
    scheme: ClassScheme,
) -> tuple[list[pystac.Item], Tally]:
    """Every chip's files under `folder` (chip-NNNNN by its index in `chips`) and their items, in the order
    they were written, with the tally of what they hold."""
    tally = Tally(len(channels))
    items = []
    reader = ChunkedWindowReader(features)
    # GDAL compresses with the GIL released: writing chips on threads overlaps with reading the next.
    writers = ThreadPoolExecutor(max_workers=WRITE_THREADS)
    pending: deque[Future[pystac.Item]] = deque()
    try:
        order = sorted(range(len(chips)), key=lambda i: (chips[i].row, chips[i].col))
        for index in progress(order, total=len(order), what="chips", unit="chip"):
            chip = chips[index]
            values = reader.window(chip.row, chip.col, chip.size).reshape(-1, chip.size, chip.size)
            label = labels[chip.row : chip.row + chip.size, chip.col : chip.col + chip.size]
            tally.add(chip.split, values, label, nodata=scheme.nodata)
            if len(pending) >= WRITE_QUEUE:  # bound the chips held in memory while GDAL compresses
                items.append(pending.popleft().result())
            pending.append(
                writers.submit(
                    write_chip,
                    folder,
                    f"chip-{index:05d}",
                    values,
                    label,
                    features_grid=grid,
                    row=chip.row,
                    col=chip.col,
                    split=chip.split,
                    block=chip.block,
                    features_item=features_item,
                    channels=channels,
                    scheme=scheme,
                )
            )
        items.extend(future.result() for future in pending)
    finally:  # on a failure too: writers still running would refill the staging folder after its removal
        writers.shutdown(wait=True, cancel_futures=True)
    return items, tally


def write_split_file(folder: Path, layout: Layout, assignment: dict[str, str]) -> Path:
    """split.json: the block -> split assignment and its grid, which --split-file takes back."""
    path = folder / "split.json"
    path.write_text(
        json.dumps({"block_size": layout.block_size, "chip_size": layout.size, "blocks": assignment}, indent=2) + "\n"
    )
    return path

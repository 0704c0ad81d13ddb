"""Sliding-window inference with blended, streamed outputs.

Windows are read lazily from the features store by a background thread while the network runs, and
their class probabilities are blended with smooth weights into an accumulator one window-row high. When
the windows move down a row, the rows above are final and go out to the writer, so memory depends on
the window size and the raster's width, never on its height.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
import xarray as xr
from torch import nn

from deep_lulc.shared.geo.windows import PixelWindow, Span, blend_weights
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.models.temporal_unet import TemporalEncoder

MULTIPLE = 32  # the U-Net halves its input five times
Emit = Callable[[Span, Span, np.ndarray], None]


@dataclass(frozen=True)
class InferenceSetup:
    window: int
    overlap: int
    batch_size: int
    device: torch.device
    input_mode: str
    mean: np.ndarray  # per network input channel
    std: np.ndarray
    n_out: int
    nodata: int

    @classmethod
    def for_model(
        cls, config: ModelConfig, *, window: int, overlap: int, batch_size: int, device: torch.device
    ) -> InferenceSetup:
        """The setup a model's config implies: its input mode, normalisation (a zero std floored so a constant
        band never divides by zero), outputs and nodata."""
        return cls(
            window=window,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            input_mode=config.input_mode,
            mean=np.asarray(config.mean, dtype=np.float32),
            std=np.maximum(np.asarray(config.std, dtype=np.float32), 1e-6),
            n_out=config.n_out,
            nodata=config.nodata,
        )


class WindowReader(Protocol):
    def read(self, window: PixelWindow) -> np.ndarray: ...


class FeatureSource:
    """Windows of a features store, read without dask: each read decodes only the chunks it touches."""

    def __init__(self, dataset: xr.Dataset) -> None:
        """`dataset`: a store opened (and verified) by the features product with `lazy=False`; opening is the
        product's job, so this layer never learns the store's layout."""
        self.dataset: xr.Dataset = dataset
        self.features = self.dataset["features"]
        self.height = int(self.dataset.sizes["y"])
        self.width = int(self.dataset.sizes["x"])

    def read(self, window: PixelWindow) -> np.ndarray:
        region = {"y": slice(window.rows.start, window.rows.stop), "x": slice(window.cols.start, window.cols.stop)}
        return np.asarray(self.features.isel(region).values, dtype=np.float32)

    def observed(self, rows: Span, cols: Span) -> np.ndarray:
        region = {"y": slice(rows.start, rows.stop), "x": slice(cols.start, cols.stop)}
        return np.asarray(self.dataset["valid_count"].isel(region).values) > 0


class RegionReader:
    """A rectangle of a features store seen as a raster of its own, so a part of a grid (the validation
    blocks of a training AOI) is predicted exactly as `predict` would predict a features item that size."""

    def __init__(self, source: FeatureSource, region: PixelWindow) -> None:
        self.source, self.region = source, region

    def read(self, window: PixelWindow) -> np.ndarray:
        row, col = self.region.rows.start, self.region.cols.start
        shifted = PixelWindow(
            Span(window.rows.start + row, window.rows.stop + row), Span(window.cols.start + col, window.cols.stop + col)
        )
        return self.source.read(shifted)


def _prefetched(source: WindowReader, windows: list[PixelWindow], depth: int) -> Iterator[tuple[PixelWindow, Any]]:
    """Windows and their arrays in order, read ahead by a thread (Zarr decoding releases the GIL)."""
    slots: queue.Queue[tuple[PixelWindow, Any] | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for window in windows:
                if stop.is_set():
                    return
                slots.put((window, source.read(window)))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            slots.put((window, exc))
            return
        slots.put(None)

    thread = threading.Thread(target=produce, name="deep-lulc-prefetch", daemon=True)
    thread.start()
    try:
        while (entry := slots.get()) is not None:
            if isinstance(entry[1], BaseException):
                raise entry[1]
            yield entry
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        thread.join(timeout=5)


BLOCK_BYTES = 1 << 22  # normalisation works on blocks this size, so each one is still in cache for the next pass


def input_memory_format(network: nn.Module) -> torch.memory_format:
    """The layout a network takes its batch in. A temporal network's encoder reshapes its input into a
    (dates, pixels) image at once, which a channels-last batch would make a full copy back to
    channels-first; every other network runs channels-last on the CPU and in cuDNN."""
    temporal = isinstance(getattr(network, "temporal", None), TemporalEncoder)
    return torch.contiguous_format if temporal else torch.channels_last


class InputBuffer:
    """One reusable batch in the network's layout: windows are normalised straight into it, so a batch
    costs one pass over its windows (cache-sized blocks, no temporaries) and the network reads it
    without another layout change. The arithmetic is the same float32 (x - mean) / std, NaN to 0 (and
    infinities clipped, as `np.nan_to_num` does), whatever the layout."""

    def __init__(self, channels_last: bool = True) -> None:
        self.channels_last = channels_last
        self.array: np.ndarray | None = None

    def fill(self, arrays: list[np.ndarray], setup: InferenceSetup) -> np.ndarray:
        """(samples, y, x, inputs) when channels-last, else (samples, inputs, y, x)."""
        dates, channels, height, width = arrays[0].shape
        stacked = setup.input_mode == "stack"
        per_window, n_in = (1, dates * channels) if stacked else (dates, channels)
        samples = len(arrays) * per_window
        shape = (samples, height, width, n_in) if self.channels_last else (samples, n_in, height, width)
        if self.array is None or self.array.shape[1:] != shape[1:] or self.array.shape[0] < shape[0]:
            self.array = np.empty(shape, dtype=np.float32)
        batch = self.array[:samples]
        mean, std = setup.mean[:, None, None], setup.std[:, None, None]
        rows = max(1, BLOCK_BYTES // (4 * n_in * width))
        # channels-last: each block is normalised channels-first in a cache-sized scratch, then transposed
        scratch = np.empty((n_in, rows, width), dtype=np.float32) if self.channels_last else None
        with np.errstate(over="ignore", invalid="ignore"):  # whatever overflows or is NaN is made finite below
            for index, features in enumerate(arrays):
                window = np.asarray(features).reshape(per_window, n_in, height, width)
                for sample in range(per_window):
                    source, target = window[sample], batch[index * per_window + sample]
                    for top in range(0, height, rows):
                        inputs = source[:, top : top + rows]
                        block = target[:, top : top + rows] if scratch is None else scratch[:, : inputs.shape[1]]
                        np.subtract(inputs, mean, out=block)
                        np.divide(block, std, out=block)
                        if not np.isfinite(block).all():
                            np.nan_to_num(block, copy=False, nan=0.0)
                        if scratch is not None:
                            np.copyto(target[top : top + rows], block.transpose(1, 2, 0))
        return batch


def _padded(batch: np.ndarray, channels_last: bool) -> np.ndarray:
    """A batch grown to what the U-Net can halve five times (reflected, or repeated when too small)."""
    y_axis = 1 if channels_last else 2
    height, width = int(batch.shape[y_axis]), int(batch.shape[y_axis + 1])
    pad_y, pad_x = -height % MULTIPLE, -width % MULTIPLE
    if not pad_y and not pad_x:
        return batch
    widths = [(0, 0)] * 4
    widths[y_axis], widths[y_axis + 1] = (0, pad_y), (0, pad_x)
    if pad_y < height and pad_x < width:
        return np.pad(batch, widths, mode="reflect")
    return np.pad(batch, widths, mode="edge")


@torch.no_grad()
def class_probabilities(
    network: nn.Module, arrays: list[np.ndarray], setup: InferenceSetup, buffer: InputBuffer | None = None
) -> np.ndarray:
    """(windows, n_out, y, x) softmax probabilities; single-date models average over dates."""
    height, width = arrays[0].shape[-2:]
    buffer = buffer or InputBuffer(input_memory_format(network) == torch.channels_last)
    batch = _padded(buffer.fill(arrays, setup), buffer.channels_last)  # padding only for grids smaller than a window
    tensor = torch.from_numpy(batch)
    if buffer.channels_last:
        tensor = tensor.permute(0, 3, 1, 2)  # NCHW view with channels-last strides
    samples = tensor.shape[0] // len(arrays)
    tensor = tensor.to(setup.device, non_blocking=True)
    if setup.device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float16):
            logits = network(tensor)
    else:
        logits = network(tensor)
    logits = logits[:, :, :height, :width].float()
    logits[:, setup.nodata] = -torch.inf
    probabilities = torch.softmax(logits, dim=1)
    if samples > 1:  # a mean over one sample is that sample: skip the pass
        probabilities = probabilities.reshape(len(arrays), samples, *probabilities.shape[1:]).mean(dim=1)
    return np.asarray(probabilities.cpu().numpy(), dtype=np.float32)


def _batches(stream: Iterator[tuple[PixelWindow, Any]], size: int) -> Iterator[list[tuple[PixelWindow, Any]]]:
    batch: list[tuple[PixelWindow, Any]] = []
    for entry in stream:
        batch.append(entry)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _Accumulator:
    """Weighted probability sums for the rows the current window-row covers, over the columns in use."""

    def __init__(self, n_out: int, height: int, cols: Span, core: PixelWindow, emit: Emit) -> None:
        self.n_out, self.height, self.cols, self.core, self.emit = n_out, height, cols, core, emit
        self.top: int | None = None
        self.sums = np.zeros((n_out, height, cols.stop - cols.start), dtype=np.float32)
        self.weights = np.zeros((height, cols.stop - cols.start), dtype=np.float32)

    def move_to(self, top: int) -> None:
        """Finish the rows above `top` and slide the accumulator down to start there."""
        if self.top is None:
            self.top = top
            return
        if top == self.top:
            return
        self._flush(self.top, top)
        shift = top - self.top
        keep = max(0, self.height - shift)
        self.sums[:, :keep] = self.sums[:, shift : shift + keep]
        self.sums[:, keep:] = 0
        self.weights[:keep] = self.weights[shift : shift + keep]
        self.weights[keep:] = 0
        self.top = top

    def add(self, window: PixelWindow, probabilities: np.ndarray, weights: np.ndarray) -> None:
        assert self.top is not None
        y0, x0 = window.rows.start - self.top, window.cols.start - self.cols.start
        self.sums[:, y0 : y0 + window.height, x0 : x0 + window.width] += probabilities * weights
        self.weights[y0 : y0 + window.height, x0 : x0 + window.width] += weights

    def finish(self) -> None:
        if self.top is not None:
            self._flush(self.top, self.top + self.height)

    def _flush(self, start: int, stop: int) -> None:
        """Emit rows [start, stop) intersected with the core region."""
        assert self.top is not None
        start, stop = max(start, self.core.rows.start), min(stop, self.core.rows.stop)
        if start >= stop:
            return
        y0, y1 = start - self.top, stop - self.top
        x0, x1 = self.core.cols.start - self.cols.start, self.core.cols.stop - self.cols.start
        blended = self.sums[:, y0:y1, x0:x1] / np.maximum(self.weights[y0:y1, x0:x1], 1e-12)
        self.emit(Span(start, stop), self.core.cols, blended)


def predict_region(
    network: nn.Module,
    source: WindowReader,
    *,
    core: PixelWindow,
    windows: list[PixelWindow],
    setup: InferenceSetup,
    emit: Emit,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Blend `windows` (grid order) and hand every finished block of `core` to `emit(rows, cols, probs)`."""
    if not windows:
        return
    cols = Span(min(w.cols.start for w in windows), max(w.cols.stop for w in windows))
    accumulator = _Accumulator(setup.n_out, windows[0].height, cols, core, emit)
    weights = blend_weights(windows[0].height, windows[0].width, setup.overlap)
    network = network.to(setup.device).to(memory_format=torch.channels_last).eval()
    buffer = InputBuffer(input_memory_format(network) == torch.channels_last)
    for batch in _batches(_prefetched(source, windows, setup.batch_size), setup.batch_size):
        probabilities = class_probabilities(network, [array for _, array in batch], setup, buffer)
        for (window, _), window_probabilities in zip(batch, probabilities, strict=True):
            accumulator.move_to(window.rows.start)
            accumulator.add(window, window_probabilities, weights)
        if progress is not None:
            progress(len(batch))
    accumulator.finish()

"""Sliding-window inference with blended, streamed outputs.

Windows are read lazily from the features store by a background thread while the network runs, and
their class probabilities are blended with smooth weights into an accumulator one window-row high. When
the windows move down a row, the rows above are final and go out to the writer, so memory depends on
the window size and the raster's width, never on its height.

A network with a per-pixel part (`PixelwiseNetwork`: the temporal networks' encoder) has that part
computed once per pixel on the CPU rather than once per overlapping window, which at the default 512 / 64
windows is most of the work; the windows then run only the rest on codes cut out of a band kept like the
accumulator. The maps are the same bit for bit (tests/shared/models/test_inference.py).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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


def _prefetched(
    source: WindowReader, windows: list[PixelWindow], depth: int
) -> Generator[tuple[PixelWindow, Any], None, None]:
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
        self.pixels: np.ndarray | None = None

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
        for index, features in enumerate(arrays):
            window = np.asarray(features).reshape(per_window, n_in, height, width)
            for sample in range(per_window):
                _normalise(window[sample], batch[index * per_window + sample], setup, channels_last=self.channels_last)
        return batch

    def fill_pixels(self, features: np.ndarray, setup: InferenceSetup) -> np.ndarray:
        """One stacked (dates, channels, y, x) rectangle as a (1, inputs, 1, pixels) row for a network's per-pixel
        part, zero-padded to a multiple of `PIXEL_BLOCK` pixels (see there why)."""
        dates, channels, height, width = features.shape
        n_in, count = dates * channels, height * width
        padded = count + (-count % PIXEL_BLOCK)
        if self.pixels is None or self.pixels.shape[0] != n_in or self.pixels.shape[1] < padded:
            self.pixels = np.empty((n_in, padded), dtype=np.float32)
        row = self.pixels[:, :padded]
        # torch's elementwise ops: the same IEEE float32 subtraction and division as `_normalise`, on every core
        target = torch.from_numpy(row)[:, :count]
        source = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32).reshape(n_in, count))
        torch.sub(source, torch.from_numpy(setup.mean)[:, None], out=target)
        torch.div(target, torch.from_numpy(setup.std)[:, None], out=target)
        torch.nan_to_num_(target, nan=0.0)  # infinities to the largest finite float32, as np.nan_to_num does
        row[:, count:] = 0
        return row.reshape(1, n_in, 1, padded)


def _normalise(source: np.ndarray, target: np.ndarray, setup: InferenceSetup, *, channels_last: bool = False) -> None:
    """(x - mean) / std of one (inputs, y, x) sample into `target` ((y, x, inputs) when channels-last) in
    cache-sized row blocks, NaN to 0 and infinities clipped as `np.nan_to_num` does."""
    n_in, height, width = source.shape
    mean, std = setup.mean[:, None, None], setup.std[:, None, None]
    rows = max(1, BLOCK_BYTES // (4 * n_in * width))
    # channels-last: each block is normalised channels-first in a cache-sized scratch, then transposed
    scratch = np.empty((n_in, rows, width), dtype=np.float32) if channels_last else None
    with np.errstate(over="ignore", invalid="ignore"):  # whatever overflows or is NaN is made finite below
        for top in range(0, height, rows):
            inputs = source[:, top : top + rows]
            block = target[:, top : top + rows] if scratch is None else scratch[:, : inputs.shape[1]]
            np.subtract(inputs, mean, out=block)
            np.divide(block, std, out=block)
            if not np.isfinite(block).all():
                np.nan_to_num(block, copy=False, nan=0.0)
            if scratch is not None:
                np.copyto(target[top : top + rows], block.transpose(1, 2, 0))


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
    tensor = tensor.to(setup.device, non_blocking=True)
    if setup.device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float16):
            logits = network(tensor)
    else:
        logits = network(tensor)
    return _softmax(logits, len(arrays), height, width, setup)


def _softmax(logits: torch.Tensor, windows: int, height: int, width: int, setup: InferenceSetup) -> np.ndarray:
    """(windows, n_out, y, x) probabilities of a batch's logits: padding cut off, nodata never chosen."""
    samples = logits.shape[0] // windows
    logits = logits[:, :, :height, :width].float()
    logits[:, setup.nodata] = -torch.inf
    probabilities = torch.softmax(logits, dim=1)
    if samples > 1:  # a mean over one sample is that sample: skip the pass
        probabilities = probabilities.reshape(windows, samples, *probabilities.shape[1:]).mean(dim=1)
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


@runtime_checkable
class PixelwiseNetwork(Protocol):
    """A network whose inference splits into a per-pixel part and a part over windows of its output: each
    pixel's per-pixel part is then computed once, however many overlapping windows cover the pixel."""

    def pixelwise(self, x: torch.Tensor) -> torch.Tensor: ...
    def windowed(self, codes: torch.Tensor) -> torch.Tensor: ...


# Every per-pixel forward gets a multiple of this many pixels (zero-padded): torch's CPU kernels handle a
# remainder that fills no vector register, or a thread's share that ends mid-register, with scalar code
# whose last bits differ, so a pixel's codes match those of a whole-window forward (512 x 512 px, all
# vector code) only when no pixel ends up in such a remainder. A test compares the two paths bit for bit.
PIXEL_BLOCK = 1024


def _fresh_regions(windows: list[PixelWindow], cols: Span) -> list[PixelWindow | None]:
    """For each window (grid order), the bounding box of its pixels that no earlier window still in the
    band of rows has covered, or None: the only pixels whose per-pixel part must be computed for it."""
    height = windows[0].height
    done = np.zeros((height, cols.stop - cols.start), dtype=bool)
    top: int | None = None
    fresh: list[PixelWindow | None] = []
    for window in windows:
        if top is None or window.rows.start != top:
            _slide(done, 0 if top is None else window.rows.start - top)
            top = window.rows.start
        x0 = window.cols.start - cols.start
        missing = ~done[: window.height, x0 : x0 + window.width]
        if not missing.any():
            fresh.append(None)
            continue
        rows, columns = np.flatnonzero(missing.any(axis=1)), np.flatnonzero(missing.any(axis=0))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, x0 + int(columns[0]), x0 + int(columns[-1]) + 1
        done[r0:r1, c0:c1] = True
        fresh.append(PixelWindow(Span(top + r0, top + r1), Span(cols.start + c0, cols.start + c1)))
    return fresh


def _slide(array: np.ndarray, shift: int) -> None:
    """Move an array's rows (its second-to-last axis) up by `shift`, clearing those that come in; a shift that
    is not downward clears it all."""
    height = array.shape[-2]
    keep = max(0, height - shift) if shift > 0 else 0
    if keep:
        array[..., :keep, :] = array[..., shift : shift + keep, :]
    array[..., keep:, :] = 0


@torch.no_grad()
def _predict_pixelwise(
    network: PixelwiseNetwork,
    source: WindowReader,
    windows: list[PixelWindow],
    cols: Span,
    setup: InferenceSetup,
    add: Callable[[PixelWindow, np.ndarray], None],
    progress: Callable[[int], None] | None,
) -> None:
    """The windows' probabilities with each pixel's per-pixel part computed once: the part is kept for a band
    of rows one window high (as the accumulator is), each window reads and computes only its fresh pixels,
    and the windowed part runs on the window cut out of the band, so every window sees exactly the codes a
    whole-window forward would give it."""
    fresh = _fresh_regions(windows, cols)
    reads = [region for region in fresh if region is not None]
    height = windows[0].height
    band: np.ndarray | None = None
    top: int | None = None
    buffer = InputBuffer(channels_last=False)
    stream = _prefetched(source, reads, setup.batch_size)
    batch: list[PixelWindow] = []
    codes: list[np.ndarray] = []
    try:
        for index, (window, region) in enumerate(zip(windows, fresh, strict=True)):
            if band is not None and top is not None and window.rows.start != top:
                _slide(band, window.rows.start - top)
            top = window.rows.start
            if region is not None:
                _, features = next(stream)
                pixels = network.pixelwise(torch.from_numpy(buffer.fill_pixels(features, setup)))
                values = pixels[0, :, 0, : region.height * region.width].reshape(-1, region.height, region.width)
                if band is None:
                    band = np.zeros((values.shape[0], height, cols.stop - cols.start), dtype=np.float32)
                y0, x0 = region.rows.start - top, region.cols.start - cols.start
                band[:, y0 : y0 + region.height, x0 : x0 + region.width] = values.numpy()
            assert band is not None
            x0 = window.cols.start - cols.start
            batch.append(window)
            codes.append(band[:, : window.height, x0 : x0 + window.width].copy())  # the band may slide before use
            if len(batch) == setup.batch_size or index == len(windows) - 1:
                stacked = _padded(np.stack(codes), channels_last=False)
                logits = network.windowed(torch.from_numpy(stacked))
                probabilities = _softmax(logits, len(batch), window.height, window.width, setup)
                for done, window_probabilities in zip(batch, probabilities, strict=True):
                    add(done, window_probabilities)
                if progress is not None:
                    progress(len(batch))
                batch, codes = [], []
    finally:
        stream.close()


def pixelwise_network(network: nn.Module, setup: InferenceSetup) -> PixelwiseNetwork | None:
    """The network as a `PixelwiseNetwork` where its per-pixel part can be shared between windows: on the CPU
    (cuDNN and autocast choose kernels by shape, so sharing could change the bits), stacked inputs."""
    if setup.device.type == "cpu" and setup.input_mode == "stack" and isinstance(network, PixelwiseNetwork):
        return network
    return None


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

    def add(window: PixelWindow, probabilities: np.ndarray) -> None:
        accumulator.move_to(window.rows.start)
        accumulator.add(window, probabilities, weights)

    pixelwise = pixelwise_network(network, setup)
    if pixelwise is not None:
        _predict_pixelwise(pixelwise, source, windows, cols, setup, add, progress)
        accumulator.finish()
        return
    buffer = InputBuffer(input_memory_format(network) == torch.channels_last)
    for batch in _batches(_prefetched(source, windows, setup.batch_size), setup.batch_size):
        probabilities = class_probabilities(network, [array for _, array in batch], setup, buffer)
        for (window, _), window_probabilities in zip(batch, probabilities, strict=True):
            add(window, window_probabilities)
        if progress is not None:
            progress(len(batch))
    accumulator.finish()

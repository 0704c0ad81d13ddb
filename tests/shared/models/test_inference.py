"""Inference input preparation: whatever layout and blocking it uses, the network must see exactly the
float32 values of (x - mean) / std with NaN as 0, so predictions do not move with performance work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deep_lulc.shared.geo.windows import PixelWindow, Span, window_grid
from deep_lulc.shared.models import inference
from deep_lulc.shared.models.inference import InferenceSetup, InputBuffer, class_probabilities, input_memory_format
from deep_lulc.shared.models.temporal_unet import TemporalUnet

DATES, FEATURES, N_OUT = 5, 3, 4


def setup_for(mode: str, seed: int = 0) -> InferenceSetup:
    n_in = DATES * FEATURES if mode == "stack" else FEATURES
    rng = np.random.default_rng(seed)
    return InferenceSetup(
        window=48,
        overlap=8,
        batch_size=2,
        device=torch.device("cpu"),
        input_mode=mode,
        mean=rng.normal(0.2, 0.05, n_in).astype(np.float32),
        std=rng.uniform(1e-6, 0.3, n_in).astype(np.float32),
        n_out=N_OUT,
        nodata=0,
    )


def windows(count: int, height: int, width: int, seed: int = 1) -> list[np.ndarray]:
    """Feature windows with every value normalisation must treat specially: NaN, both infinities, and
    values large enough to overflow float32 once divided by a tiny std."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _ in range(count):
        array = rng.normal(0.2, 0.1, (DATES, FEATURES, height, width)).astype(np.float32)
        array[1, 0, 2:5, 3:9] = np.nan
        array[2, 1, 7, 1:4] = np.inf
        array[0, 2, 9, 5] = -np.inf
        array[3, 0, 11, 2] = 3e38
        arrays.append(array)
    return arrays


def plain_normalisation(arrays: list[np.ndarray], setup: InferenceSetup) -> np.ndarray:
    """The formula in its most direct form, channels-first: the reference for every layout and block size."""
    stacked = setup.input_mode == "stack"
    samples = []
    for array in arrays:
        dates, channels, height, width = array.shape
        per_window, n_in = (1, dates * channels) if stacked else (dates, channels)
        samples.append(array.reshape(per_window, n_in, height, width))
    batch = np.concatenate(samples).astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # 3e38 / a tiny std overflows, as it may in real data
        batch = (batch - setup.mean[:, None, None]).astype(np.float32)
        batch = (batch / setup.std[:, None, None]).astype(np.float32)
    finite: np.ndarray = np.nan_to_num(batch, nan=0.0)
    return finite


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("mode", ["stack", "single"])
@pytest.mark.parametrize("block_bytes", [1 << 22, 700])  # one block per window, or several with a short last one
def test_normalised_batch_is_the_plain_formula_bit_for_bit(
    channels_last: bool, mode: str, block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inference, "BLOCK_BYTES", block_bytes)
    setup = setup_for(mode)
    arrays = windows(2, 13, 10)
    batch = InputBuffer(channels_last).fill(arrays, setup)
    expected = plain_normalisation(arrays, setup)
    if channels_last:
        expected = expected.transpose(0, 2, 3, 1)
    assert batch.shape == expected.shape
    assert np.isfinite(batch).all(), "NaN and infinities never reach the network"
    assert np.array_equal(batch, expected)


def test_buffer_is_reused_and_a_smaller_last_batch_is_a_view_of_it() -> None:
    setup = setup_for("stack")
    buffer = InputBuffer(False)
    first = buffer.fill(windows(3, 16, 12), setup)
    last = buffer.fill(windows(1, 16, 12, seed=2), setup)
    assert last.shape[0] == 1
    assert np.shares_memory(first, last)
    assert np.array_equal(last, plain_normalisation(windows(1, 16, 12, seed=2), setup))


def test_the_temporal_unet_takes_channels_first_and_other_networks_channels_last() -> None:
    assert input_memory_format(TemporalUnet(FEATURES, DATES, N_OUT)) == torch.contiguous_format
    assert input_memory_format(nn.Conv2d(DATES * FEATURES, N_OUT, 1)) == torch.channels_last


def trained_looking(network: nn.Module) -> nn.Module:
    """Batch-norm statistics away from 0/1, so normalisation layers are not identities."""
    torch.manual_seed(3)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None
            assert module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return network.to(memory_format=torch.channels_last).eval()


@pytest.mark.parametrize(("height", "width"), [(64, 64), (40, 52)])  # 40 x 52: padded up to 64 x 64
def test_temporal_unet_probabilities_do_not_depend_on_the_input_layout(height: int, width: int) -> None:
    torch.manual_seed(0)
    network = trained_looking(TemporalUnet(FEATURES, DATES, N_OUT))
    setup, arrays = setup_for("stack"), windows(2, height, width)
    first = class_probabilities(network, arrays, setup, InputBuffer(channels_last=False))
    last = class_probabilities(network, arrays, setup, InputBuffer(channels_last=True))
    assert first.shape == (2, N_OUT, height, width)
    assert np.array_equal(first, last)
    assert (first[:, 0] == 0).all(), "the nodata class gets no probability"
    np.testing.assert_allclose(first.sum(axis=1), 1.0, atol=1e-5)


def test_single_date_models_average_their_dates_probabilities() -> None:
    torch.manual_seed(0)
    network = nn.Conv2d(FEATURES, N_OUT, 3, padding=1).eval()
    setup, arrays = setup_for("single"), windows(2, 32, 32)
    probabilities = class_probabilities(network, arrays, setup)
    with torch.no_grad():
        logits = network(torch.from_numpy(plain_normalisation(arrays, setup)))
    logits[:, 0] = -torch.inf
    expected = torch.softmax(logits, dim=1).reshape(2, DATES, N_OUT, 32, 32).mean(dim=1).numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


class _ArrayReader:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def read(self, window: PixelWindow) -> np.ndarray:
        return self.array[:, :, window.rows.start : window.rows.stop, window.cols.start : window.cols.stop]


def _blended(network: nn.Module, features: np.ndarray, setup: InferenceSetup, *, shared: bool) -> np.ndarray:
    """The whole blended map of `predict_region`, with the per-pixel part shared between windows or not."""
    height, width = features.shape[-2:]
    out = np.full((setup.n_out, height, width), np.nan, dtype=np.float32)

    def emit(rows: Span, cols: Span, probabilities: np.ndarray) -> None:
        out[:, rows.start : rows.stop, cols.start : cols.stop] = probabilities

    core = PixelWindow(Span(0, height), Span(0, width))
    grid = window_grid(height, width, setup.window, setup.overlap)
    with pytest.MonkeyPatch.context() as patch:
        if not shared:
            patch.setattr(inference, "pixelwise_network", lambda network, setup: None)
        inference.predict_region(network, _ArrayReader(features), core=core, windows=grid, setup=setup, emit=emit)
    return out


@pytest.mark.parametrize("architecture", ["temporal-pixel", "temporal-unet"])
@pytest.mark.parametrize(("size", "window", "overlap", "batch"), [(160, 64, 16, 1), (150, 96, 24, 3), (40, 64, 8, 1)])
def test_sharing_the_per_pixel_part_between_windows_changes_no_bit(
    architecture: str, size: int, window: int, overlap: int, batch: int
) -> None:
    """Overlapping windows share each pixel's per-pixel part (computed once, in padded blocks): the blended
    map must be the one of whole-window forwards bit for bit, also when the grid is smaller than a window
    (padded) and when a batch spans two rows of windows."""
    from deep_lulc.shared.models.architectures import spec

    torch.manual_seed(3)
    config = type("Config", (), {"features": ["a"] * FEATURES, "dates": ["d"] * DATES, "n_out": N_OUT})()
    network = spec(architecture).build(config).eval()
    for parameter in network.parameters():  # untrained batch norm is the identity: give it something to do
        parameter.data.uniform_(-0.5, 0.5)
    setup = setup_for("stack")
    setup = InferenceSetup(**{**setup.__dict__, "window": window, "overlap": overlap, "batch_size": batch})
    features = windows(1, size, size, seed=size)[0]
    assert inference.pixelwise_network(network, setup) is not None
    shared = _blended(network, features, setup, shared=True)
    plain = _blended(network, features, setup, shared=False)
    assert not np.isnan(plain).any()
    assert shared.tobytes() == plain.tobytes()


def test_a_rectangle_of_pixels_gets_the_codes_of_its_whole_window() -> None:
    """Torch's remainder loops round differently: a rectangle with an odd pixel count (here 74 x 87) must still
    get, bit for bit, the per-pixel codes it has inside a whole 96 x 96 window (the padding to PIXEL_BLOCK)."""
    torch.manual_seed(4)
    network = TemporalUnet(FEATURES, DATES, N_OUT).eval().to(memory_format=torch.channels_last)
    setup = setup_for("stack")
    features = windows(1, 96, 96, seed=5)[0]
    with torch.no_grad():
        whole = network.pixelwise(torch.from_numpy(InputBuffer(False).fill([features], setup)))
        rect = features[:, :, 3:77, 5:92]
        row = network.pixelwise(torch.from_numpy(InputBuffer(False).fill_pixels(rect, setup)))
    codes = row[0, :, 0, : 74 * 87].reshape(-1, 74, 87)
    assert torch.equal(codes, whole[0, :, 3:77, 5:92])


@pytest.mark.parametrize(("height", "width"), [(37, 53), (16, 16)])
def test_a_row_of_pixels_is_normalised_as_a_window_bit_for_bit(height: int, width: int) -> None:
    """`fill_pixels` (torch's ops, padded to PIXEL_BLOCK) against the plain formula, NaN and infinities included."""
    setup = setup_for("stack")
    features = windows(1, height, width, seed=height)[0]
    row = InputBuffer(False).fill_pixels(features, setup)
    assert row.shape[-1] % inference.PIXEL_BLOCK == 0
    assert not row[0, :, 0, height * width :].any()
    pixels = np.ascontiguousarray(row[0, :, 0, : height * width].reshape(-1, height, width))
    assert pixels.tobytes() == plain_normalisation([features], setup)[0].tobytes()

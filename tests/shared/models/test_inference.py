"""Inference input preparation: whatever layout and blocking it uses, the network must see exactly the
float32 values of (x - mean) / std with NaN as 0, so predictions do not move with performance work."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

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

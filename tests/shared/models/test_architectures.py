"""The architecture registry: one entry per model, and every entry builds a network that predict can run."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest
import torch

from deep_lulc.shared.models import architectures
from deep_lulc.shared.models.inference import input_memory_format
from deep_lulc.shared.models.networks import ModelConfig, build_network
from deep_lulc.stages.train.params import TrainParams

FEATURES, DATES, N_OUT = ["B02", "NDVI"], ["2023-01-01", "2023-01-17", "2023-02-02"], 4


def config_for(name: str) -> ModelConfig:
    channels = [f"{d}_{f}" for d in DATES for f in FEATURES]
    return ModelConfig(
        encoder="resnet18" if "encoder" in architectures.spec(name).options else name,
        n_in=len(channels),
        n_out=N_OUT,
        chip_size=32,
        input_mode="stack",
        channels=channels,
        features=FEATURES,
        dates=DATES,
        mean=[0.0] * len(channels),
        std=[1.0] * len(channels),
        class_values=[0, 1, 2, 3],
        class_names=["NoData", "a", "b", "c"],
        architecture=name,
    )


def test_every_architecture_name_has_one_registry_entry() -> None:
    assert set(architectures.REGISTRY) == set(get_args(architectures.Architecture))
    assert TrainParams().architecture == architectures.DEFAULT_ARCHITECTURE
    for name, entry in architectures.REGISTRY.items():
        assert entry.name == name
        assert entry.network == (entry.builder is not None), name
        assert (entry.default_lr is not None) == entry.network, name
        assert name in architectures.help_text()


@pytest.mark.parametrize("name", architectures.NETWORK_ARCHITECTURES)
def test_every_network_entry_builds_and_maps_a_window(name: str) -> None:
    config = config_for(name)
    network = build_network(config, pretrained=False).eval()
    with torch.no_grad():
        logits = network(torch.randn(2, config.n_in, 32, 32))
    assert logits.shape == (2, N_OUT, 32, 32)
    assert torch.isfinite(logits).all()
    expected = torch.contiguous_format if config.spec.channels_first else torch.channels_last
    assert input_memory_format(network) == expected


def test_a_pixel_classifier_has_no_network_to_build() -> None:
    from deep_lulc.shared.errors import BadInputError

    with pytest.raises(BadInputError, match="a lightgbm model has no network to build"):
        build_network(config_for("lightgbm"))
    with pytest.raises(TypeError, match="lightgbm has no network"):
        architectures.spec("lightgbm").build(config_for("lightgbm"))


def test_the_default_network_is_per_pixel_with_a_3x3_average_at_inference() -> None:
    """A pixel's class depends on itself and its 8 neighbours only: changing a pixel two away changes nothing."""
    torch.manual_seed(0)
    network = build_network(config_for("temporal-pixel")).eval()
    x = torch.randn(1, len(FEATURES) * len(DATES), 9, 9)
    changed = x.clone()
    changed[:, :, 4, 6] += 5.0
    with torch.no_grad():
        before, after = network(x), network(changed)
    differs = (before - after).abs().amax(dim=1)[0] > 1e-6
    assert differs[4, 5]
    assert differs[3, 7]
    assert differs[5, 6]
    assert not differs[4, 3]
    assert not differs[1, 6]
    assert not differs[4, 8 - 8]
    network.train()
    with torch.no_grad():
        trained_view = network(x)
    assert trained_view.shape == before.shape, "training sees per-pixel logits, no average"


def test_predicting_with_a_temporal_model_does_not_load_torchvision() -> None:
    """Every predict and train process of a run pays its imports: torchvision (and the compiler its models
    package imports) loads only when a ResNet U-Net is built."""
    code = (
        "import sys, torch\n"
        "from deep_lulc.stages.predict import stage\n"
        "from deep_lulc.shared.models.networks import build_network\n"
        "assert 'torchvision' not in sys.modules, 'imported with the stage'\n"
        "from deep_lulc.shared.models.networks import encoder_builder\n"
        "encoder_builder('resnet18')\n"
        "assert 'torchvision' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)

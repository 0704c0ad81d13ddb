"""Training and inference images/s of the temporal U-Net and the fastai U-Net on demo chips (64 px, 23 x 9).

Run: .venv/bin/python -m benchmarks.train   (uses CUDA too where a GPU is present)
"""

from __future__ import annotations

import time

import torch

from deep_lulc.shared.models.networks import ModelConfig, build_network, count_parameters
from deep_lulc.stages.train.losses import WeightedCrossEntropy

CHANNELS = 23 * 9
SIZE = 64
BATCH = 8
STEPS = 6


def config(encoder: str) -> ModelConfig:
    """`encoder`: a ResNet of the fastai U-Net, or a temporal architecture (`temporal-pixel`, the default, or
    `temporal-unet`)."""
    temporal = encoder.startswith("temporal-")
    return ModelConfig(
        encoder=encoder,
        n_in=CHANNELS,
        n_out=11,
        chip_size=SIZE,
        input_mode="stack",
        channels=[f"c{i}" for i in range(CHANNELS)],
        features=[f"f{i}" for i in range(9)] if temporal else [],
        dates=[f"d{i}" for i in range(23)] if temporal else [],
        mean=[0.0] * CHANNELS,
        std=[1.0] * CHANNELS,
        class_values=list(range(11)),
        class_names=[f"k{i}" for i in range(11)],
        architecture=encoder if temporal else "unet",
    )


def images_per_second(encoder: str, device: torch.device) -> tuple[float, float, int]:
    torch.manual_seed(0)
    model = build_network(config(encoder)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    images = torch.randn(BATCH, CHANNELS, SIZE, SIZE, device=device)
    labels = torch.randint(0, 11, (BATCH, SIZE, SIZE), device=device)
    loss_function = WeightedCrossEntropy(None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for step in range(STEPS + 1):
        if step == 1:  # the first step pays for allocation and kernel selection
            sync()
            started = time.perf_counter()
        with autocast:
            loss = loss_function(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync()
    training = BATCH * STEPS / (time.perf_counter() - started)
    model.eval()
    with torch.no_grad(), autocast:
        model(images)
        sync()
        started = time.perf_counter()
        for _ in range(STEPS):
            model(images)
        sync()
    inference = BATCH * STEPS / (time.perf_counter() - started)
    return training, inference, count_parameters(model)


def main() -> None:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(
        f"U-Net, {CHANNELS} input channels, {SIZE} x {SIZE} px chips, batch {BATCH}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    for device in devices:
        for encoder in ("temporal-pixel", "temporal-unet", "resnet18", "resnet34"):
            training, inference, parameters = images_per_second(encoder, device)
            print(
                f"{device.type:>4} {encoder:<14} {parameters / 1e6:5.1f} M params: "
                f"train {training:7.1f} images/s, inference {inference:7.1f} images/s"
            )


if __name__ == "__main__":
    main()

"""The temporal networks: a per-pixel temporal encoder, then either a compact U-Net (`temporal-unet`) or a
per-pixel head whose class probabilities are averaged over 3 x 3 pixels (`temporal-pixel`, the default).

The temporal encoder (in the spirit of L-TAE / TempCNN) looks at each pixel's 16-day sequence on its
own: shared temporal convolutions over the date axis, a learned embedding of each date's position, and
attention pooling with a few heads that learn *which* dates matter (crops and mown grass differ only in
their calendar). It compresses dates x features into a short vector per pixel, so the spatial network
sees a few channels instead of hundreds.

The spatial U-Net is deliberately shallow and narrow (three levels, a receptive field of about 40 px,
a quarter of a million parameters): settlements and parcels need tens of metres of context, not
kilometres, and it must train in minutes on two CPU cores. At inference batch norm is a per-pixel affine
map and padding is reflective, so a pixel's output depends on its neighbourhood only, not on how large
the inference window is: a model trained on 64 px chips holds on 512 px windows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

if TYPE_CHECKING:
    from deep_lulc.shared.models.networks import ModelConfig

SPATIAL_WIDTHS = (16, 32, 64)
TEMPORAL_WIDTH = 16
TEMPORAL_OUT = 32
HEADS = 4


def _conv_norm_relu(n_in: int, n_out: int, kernel: tuple[int, int], padding: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            n_in, n_out, kernel, padding=padding, padding_mode="reflect" if max(padding) else "zeros", bias=False
        ),
        nn.BatchNorm2d(n_out),
        nn.ReLU(inplace=True),
    )


TEMPORAL_STRIDE = 2  # 16-day steps in, 32-day steps out of the embedding: phenology is slower than that


class TemporalEncoder(nn.Module):
    """(batch, dates x features, y, x), date-major, -> (batch, TEMPORAL_OUT, y, x), one pixel at a time.

    Time is laid out as the height of a (dates, pixels) image, so the temporal convolutions are ordinary
    (k, 1) convolutions, shared by every pixel and every date.
    """

    def __init__(self, n_features: int, n_dates: int) -> None:
        super().__init__()
        self.n_features, self.n_dates = n_features, n_dates
        width = TEMPORAL_WIDTH
        # The inputs are z-scores already: the embedding needs no normalisation of its own, which would cost
        # as much as the convolution on a (dates x pixels) tensor.
        self.embed = nn.Sequential(
            nn.Conv2d(n_features, width, (3, 1), stride=(TEMPORAL_STRIDE, 1), padding=(1, 0)), nn.ReLU(inplace=True)
        )
        self.steps = (n_dates - 1) // TEMPORAL_STRIDE + 1
        self.position = nn.Parameter(torch.zeros(1, width, self.steps, 1))
        self.scores = nn.Conv2d(width, HEADS, 1)
        self.out = _conv_norm_relu(width, TEMPORAL_OUT, (1, 1), (0, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = x.shape
        sequence = x.reshape(batch, self.n_dates, self.n_features, height * width).transpose(1, 2)
        embedded = self.embed(sequence) + self.position  # (batch, width, dates, pixels)
        attention = torch.softmax(self.scores(embedded), dim=2)  # (batch, heads, dates, pixels)
        channels = embedded.shape[1]
        grouped = embedded.reshape(batch, HEADS, channels // HEADS, self.steps, height * width)
        pooled = (grouped * attention.unsqueeze(2)).sum(dim=3).reshape(batch, channels, height, width)
        encoded: torch.Tensor = self.out(pooled)
        return encoded


class _Level(nn.Sequential):
    def __init__(self, n_in: int, n_out: int, convolutions: int = 2) -> None:
        layers = [_conv_norm_relu(n_in if i == 0 else n_out, n_out, (3, 3), (1, 1)) for i in range(convolutions)]
        super().__init__(*layers)


class CompactUnet(nn.Module):
    """Three levels (full, 1/2, 1/4 resolution), skip connections, nearest-neighbour upsampling."""

    def __init__(self, n_in: int, n_out: int, widths: tuple[int, ...] = SPATIAL_WIDTHS) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        previous = n_in
        for level, width in enumerate(widths):  # one convolution at full resolution, where pixels are many
            self.down.append(_Level(previous, width, 1 if level == 0 else 2))
            previous = width
        self.reduce = nn.ModuleList()
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths[:-1]))):
            self.reduce.append(nn.Conv2d(previous, width, 1))
            self.up.append(_Level(2 * width, width, 1 if level == 0 else 2))
            previous = width
        self.head = nn.Conv2d(previous, n_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, level in enumerate(self.down):
            if index:
                x = F.max_pool2d(x, 2)
            x = level(x)
            skips.append(x)
        skips.pop()
        for reduce, level in zip(self.reduce, self.up, strict=True):
            skip = skips.pop()
            x = reduce(F.interpolate(x, size=skip.shape[-2:], mode="nearest"))
            x = level(torch.cat([x, skip], dim=1))
        logits: torch.Tensor = self.head(x)
        return logits


class TemporalUnet(nn.Module):
    """The temporal encoder, then the compact U-Net over its per-pixel codes."""

    def __init__(self, n_features: int, n_dates: int, n_out: int) -> None:
        super().__init__()
        self.temporal = TemporalEncoder(n_features, n_dates)
        self.spatial = CompactUnet(TEMPORAL_OUT, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.windowed(self.pixelwise(x))

    def pixelwise(self, x: torch.Tensor) -> torch.Tensor:
        """The part that sees one pixel at a time: inference computes it once per pixel, not once per
        overlapping window (`deep_lulc.shared.models.inference`)."""
        encoded: torch.Tensor = self.temporal(x)
        return encoded

    def windowed(self, codes: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.spatial(codes)
        return logits


HEAD_DROPOUT = 0.2


class TemporalPixelNet(nn.Module):
    """The temporal encoder and a linear classifier per pixel; at inference, class probabilities averaged over
    each pixel's 3 x 3 neighbourhood.

    Why per pixel: on real imagery with a few dozen labelled parcels, a U-Net learns the shapes and
    surroundings of those parcels, which do not carry over to the next ones; trained on every labelled pixel
    of the chips (one loss term each, as a pixel classifier is), the encoder learns the calendar instead. On
    the real crop tile it beat the temporal U-Net and LightGBM when trained on one half of the training AOI
    and scored on the other (docs/real-experiments.md). The 3 x 3 average (a parcel is wider than 30 m)
    removes speckle without learned spatial weights and reaches one pixel beyond each pixel, so a map does not
    depend on the inference window.
    """

    def __init__(self, n_features: int, n_dates: int, n_out: int) -> None:
        super().__init__()
        self.temporal = TemporalEncoder(n_features, n_dates)
        self.head = nn.Sequential(nn.Dropout(HEAD_DROPOUT), nn.Conv2d(TEMPORAL_OUT, n_out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            logits: torch.Tensor = self.head(self.temporal(x))
            return logits
        return self.windowed(self.pixelwise(x))

    def pixelwise(self, x: torch.Tensor) -> torch.Tensor:
        """Inference's per-pixel part, the class probabilities before smoothing: computed once per pixel, not
        once per overlapping window (`deep_lulc.shared.models.inference`)."""
        return torch.softmax(self.head(self.temporal(x)), dim=1)

    def windowed(self, probabilities: torch.Tensor) -> torch.Tensor:
        smoothed = F.avg_pool2d(probabilities, 3, stride=1, padding=1, count_include_pad=False)
        return torch.log(smoothed.clamp_min(1e-7))


def build_temporal_pixel(config: ModelConfig, **_: object) -> nn.Module:
    return TemporalPixelNet(len(config.features), len(config.dates), config.n_out)


def build_temporal_unet(config: ModelConfig, **_: object) -> nn.Module:
    """Trained from scratch: there are no ImageNet weights for a temporal encoder."""
    return TemporalUnet(len(config.features), len(config.dates), config.n_out)

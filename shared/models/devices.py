"""Which torch device a stage runs on, chosen without importing a training framework."""

from __future__ import annotations

import torch

from deep_lulc.shared.errors import BadInputError


def pick_device(requested: str) -> torch.device:
    """`auto` takes CUDA when present; asking for CUDA where there is none is a usage error, not a bug."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda asked for, but no CUDA device is available", fix="use --device auto or cpu")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")

"""The networks, rebuilt from a JSON config + safetensors: fastai's Dynamic U-Net on a torchvision ResNet
(`unet`, the original's), the temporal encoder + compact U-Net (`temporal-unet`), and the LightGBM pixel
classifier (`lightgbm`), which has no weights tensor but a LightGBM text model.

Nothing here unpickles: weights travel as safetensors, configuration as JSON, local encoder weights are
read with `weights_only=True`.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_model
from torch import nn

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.models import architectures
from deep_lulc.shared.models.architectures import ARCHITECTURES


def encoder_builder(name: str) -> Any:
    """torchvision's constructor of a ResNet encoder. torchvision loads only here, for the ImageNet U-Net: its
    models package imports torch's compiler (1.5 s), which every predict and train of the other models and
    every step of a run would pay otherwise."""
    import torchvision

    return getattr(torchvision.models, name)


DOWNLOAD_TIMEOUT_S = 20


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network and feed it: stored as the model item's config asset."""

    encoder: str
    n_in: int
    n_out: int
    chip_size: int
    input_mode: str
    channels: list[str]  # input band names
    features: list[str]
    dates: list[str]
    mean: list[float]
    std: list[float]
    class_values: list[int]
    class_names: list[str]
    nodata: int = 0
    self_attention: bool = False
    architecture: str = "unet"  # configs written before architectures existed hold the Dynamic U-Net
    window: int | None = None  # the inference window and overlap the map-level validation used
    overlap: int | None = None
    output_values: list[int] | None = None  # lightgbm: the class value of each booster output

    @property
    def spec(self) -> architectures.ArchitectureSpec:
        return architectures.spec(self.architecture)

    @property
    def is_network(self) -> bool:
        return self.spec.network

    @property
    def output_classes(self) -> list[int]:
        """The class value of each model output, in order: a network's output channel i is class value i, a
        LightGBM booster answers its trained classes only."""
        if self.output_values is not None:
            return list(self.output_values)
        return list(range(self.n_out))

    def to_json(self) -> str:
        return json.dumps({"format": "deep-lulc-model/1", **asdict(self)}, indent=2)

    @staticmethod
    def from_json(text: str) -> ModelConfig:
        """Validated like params: a malformed config is bad input (exit 2) naming the field, never a crash."""
        fix = "pass a model item from `deep-lulc train` (its model-config.json is written with the weights)"
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"model config is not JSON ({exc})", fix=fix) from exc
        if not isinstance(document, dict) or document.pop("format", None) != "deep-lulc-model/1":
            raise BadInputError("model config is not a deep-lulc model config", fix=fix)
        known = {f.name: f for f in dataclasses.fields(ModelConfig)}
        required = [name for name, f in known.items() if f.default is dataclasses.MISSING]
        missing = [name for name in required if name not in document]
        unknown = sorted(set(document) - set(known))
        if missing or unknown:
            raise BadInputError(f"model config: missing fields {missing}, unknown fields {unknown}", fix=fix)
        if document.get("architecture", "unet") not in ARCHITECTURES:
            raise BadInputError(
                f"model config: unknown architecture {document.get('architecture')!r} (known: {list(ARCHITECTURES)})",
                fix=fix,
            )
        lists = ("channels", "features", "dates", "mean", "std", "class_values", "class_names")
        wrong = [name for name in lists if not isinstance(document[name], list)]
        wrong += [name for name in ("n_in", "n_out", "chip_size") if not isinstance(document[name], int)]
        if wrong:
            raise BadInputError(f"model config: fields {wrong} have the wrong type", fix=fix)
        return ModelConfig(**document)


def _local_encoder(name: str, weights_file: str) -> Any:
    path = Path(weights_file)
    if not path.is_file():
        raise BadInputError(f"encoder weights not found: {path}", fix="pass an existing file to --weights")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
        except Exception as exc:
            raise BadInputError(
                f"{path} is not a plain state dict (loading it would need unpickling): {exc}",
                fix="convert it to safetensors or save only model.state_dict()",
            ) from exc

    def build(*args: Any, **kwargs: Any) -> nn.Module:
        model: nn.Module = encoder_builder(name)(weights=None)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if len(missing) > 2 or unexpected:  # a classifier head ('fc') may legitimately be absent
            raise BadInputError(
                f"{path} does not fit {name}: missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]}",
                fix=f"pass weights of a torchvision {name}",
            )
        return model

    return build


def build_network(config: ModelConfig, *, pretrained: bool = False, weights_file: str | None = None) -> nn.Module:
    """The config's network, built by its architecture's registry entry."""
    if not config.is_network:
        raise BadInputError(
            f"a {config.architecture} model has no network to build", fix="use a network model for this option"
        )
    network: nn.Module = config.spec.build(config, pretrained=pretrained, weights_file=weights_file)
    return network


def build_dynamic_unet(config: ModelConfig, *, pretrained: bool = False, weights_file: str | None = None) -> nn.Module:
    """A Dynamic U-Net whose first convolution takes `config.n_in` channels, from ImageNet (or local) weights."""
    # fastai loads only for the ImageNet U-Net: 1.8 s saved on every predict of the other models (and on bad input)
    from fastai.vision.learner import create_unet_model

    size = (config.chip_size, config.chip_size)
    arch: Any = encoder_builder(config.encoder)
    if weights_file is not None:
        arch, pretrained = _local_encoder(config.encoder, weights_file), True
    elif pretrained:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            downloaded: nn.Module = create_unet_model(
                arch, config.n_out, size, pretrained=True, n_in=config.n_in, self_attention=config.self_attention
            )
            return downloaded
        except (OSError, RuntimeError) as exc:
            raise BadInputError(
                f"cannot get ImageNet weights for {config.encoder} (offline?): {type(exc).__name__}: {exc}",
                fix="pass --weights FILE with local encoder weights, or --no-pretrained to train from scratch",
            ) from exc
        finally:
            socket.setdefaulttimeout(previous)
    model: nn.Module = create_unet_model(
        arch, config.n_out, size, pretrained=pretrained, n_in=config.n_in, self_attention=config.self_attention
    )
    return model


def save_weights(model: nn.Module, path: Path) -> Path:
    save_model(model, str(path))
    return path


def load_weights(model: nn.Module, path: Path | str) -> nn.Module:
    load_model(model, str(path))
    return model


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))

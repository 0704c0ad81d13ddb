"""The trained model, rebuilt from its STAC item (JSON config + safetensors), and checked against features.

Nothing is unpickled: a weights file that is not safetensors is refused. A model only makes sense on
features with the same channels, the same number of dates at the same offsets and its own normalisation;
any difference is named, because a silently wrong map is worse than none.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pystac
import xarray as xr
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.shared.lulc.classes import ClassScheme
from deep_lulc.shared.models.networks import ModelConfig, build_network
from deep_lulc.shared.models.pixel_classifier import PixelClassifier
from deep_lulc.shared.products.model import ModelProduct, looks_pickled
from deep_lulc.shared.products.model import read_model as read_model_item

__all__ = ["LoadedModel", "check_inputs_match", "load_model", "read_model_item"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    item: pystac.Item
    config: ModelConfig
    network: nn.Module
    scheme: ClassScheme


def _pixel_classifier(raw: bytes, weights_href: str, config: ModelConfig) -> nn.Module:
    """A LightGBM model from its text format; anything else (a pickle above all) is refused."""
    fix = "use the model.txt written by `deep-lulc train --architecture lightgbm` (pickles are never loaded)"
    if looks_pickled(raw) or not raw.startswith(b"tree"):
        raise BadInputError(f"model {storage.redact(weights_href)} is not a LightGBM text model", fix=fix)
    try:
        text = raw.decode("utf-8")
        booster_classes = int(text.split("num_class=", 1)[1].split(None, 1)[0])
    except (UnicodeDecodeError, IndexError, ValueError) as exc:
        raise BadInputError(f"LightGBM model {storage.redact(weights_href)} cannot be read ({exc})", fix=fix) from exc
    values = config.output_values or []
    if len(values) != booster_classes or any(not 0 <= v < config.n_out for v in values):
        raise BadInputError(
            f"the LightGBM model has {booster_classes} classes but its config maps outputs to {values}",
            fix="keep model.txt and model-config.json from the same `deep-lulc train` run",
        )
    try:
        return PixelClassifier(text, class_values=values, n_out=config.n_out)
    except Exception as exc:  # LightGBM raises its own LightGBMError on a damaged model
        raise BadInputError(f"LightGBM model {storage.redact(weights_href)} cannot be read ({exc})", fix=fix) from exc


def load_model(model: ModelProduct) -> LoadedModel:
    """Rebuild the network from the config and fill it from the safetensors weights (or read the LightGBM model)."""
    item, config = model.item, model.config
    weights_href = model.weights_href
    raw = model.read_weights()
    if not config.is_network:
        classifier = _pixel_classifier(raw, weights_href, config)
        return LoadedModel(item=item, config=config, network=classifier, scheme=model.class_scheme())
    try:
        state = load_safetensors(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        kind = "a pickle" if looks_pickled(raw) else "not safetensors"
        raise BadInputError(
            f"model weights {storage.redact(weights_href)} are {kind}; refusing to load them ({exc})",
            fix="use the model.safetensors written by `deep-lulc train` (pickled checkpoints are never loaded)",
        ) from exc
    network = build_network(config, pretrained=False)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BadInputError(
            f"weights {storage.redact(weights_href)} do not fit the network in its config ({first})",
            fix="keep model.safetensors and model-config.json from the same `deep-lulc train` run",
        ) from exc
    network.eval()
    return LoadedModel(item=item, config=config, network=network, scheme=model.class_scheme())


def _offsets(dates: list[dt.date]) -> list[int]:
    return [(d - dates[0]).days for d in dates]


def check_inputs_match(config: ModelConfig, features: xr.Dataset) -> list[str]:
    """Raise naming every difference between the model's inputs and the features; returns warnings."""
    problems: list[str] = []
    channels = [str(c) for c in features.channel.values.tolist()]
    if channels != config.features:
        missing = [c for c in config.features if c not in channels]
        extra = [c for c in channels if c not in config.features]
        detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same names, different order"
        problems.append(f"feature channels differ ({detail}; model {config.features}, features {channels})")
    dates = [dt.date.fromisoformat(str(np.datetime_as_string(t, unit="D"))) for t in features.time.values]
    model_dates = [dt.date.fromisoformat(d) for d in config.dates]
    if len(dates) != len(model_dates):
        problems.append(f"the model takes {len(model_dates)} dates, the features have {len(dates)}")
    elif _offsets(dates) != _offsets(model_dates):
        problems.append(
            f"date offsets differ (model every {_offsets(model_dates)[1:3]} days from its start, "
            f"features {_offsets(dates)[1:3]})"
        )
    per_sample = len(config.features) * (len(config.dates) if config.input_mode == "stack" else 1)
    if config.n_in != per_sample:
        problems.append(f"the model config says {config.n_in} inputs but {per_sample} follow from its features/dates")
    if len(config.mean) != config.n_in or len(config.std) != config.n_in:
        problems.append(f"normalisation has {len(config.mean)} means / {len(config.std)} stds for {config.n_in} inputs")
    elif not (np.isfinite(config.mean).all() and np.isfinite(config.std).all() and min(config.std) > 0):
        problems.append("normalisation holds non-finite means or non-positive stds")
    if problems:
        raise BadInputError(
            "features do not match the model inputs: " + "; ".join(problems),
            fix="compute the features with the same `deep-lulc features` settings (--step-days, period length) "
            "as the training features, or use a model trained on these",
        )
    warnings = []
    shift = abs(dates[0].timetuple().tm_yday - model_dates[0].timetuple().tm_yday)
    step = max(1, _offsets(model_dates)[1] if len(model_dates) > 1 else 1)
    if min(shift, 365 - shift) > step:
        warnings.append(
            f"the features start on {dates[0]}, {min(shift, 365 - shift)} days of season away from the model's "
            f"{model_dates[0]}: phenology will not line up"
        )
    return warnings

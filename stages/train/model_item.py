"""The model as a STAC item with the Machine Learning Model (MLM) extension, as pystac writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac
import torch
from shapely.geometry import box, mapping

from deep_lulc.shared.classes import ClassScheme
from deep_lulc.shared.networks import ModelConfig
from deep_lulc.shared.stac import stamp_provenance

MLM_EXTENSION = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"
CLASSIFICATION_EXTENSION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
RASTER_EXTENSION = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
SAFETENSORS_MEDIA_TYPE = "application/octet-stream; application=safetensors"
LIGHTGBM_MEDIA_TYPE = "text/plain; application=lightgbm"
ARCHITECTURE_TITLES = {
    "unet": "DynamicUnet ({encoder} encoder, fastai)",
    "temporal-unet": "Temporal attention encoder + compact U-Net",
    "lightgbm": "LightGBM gradient-boosted trees, per pixel",
}


def model_item(
    identifier: str,
    *,
    config: ModelConfig,
    scheme: ClassScheme,
    bbox: list[float],
    temporal: tuple[str, str],
    parameters: int,
    pretrained_source: str | None,
    device: torch.device,
    batch_size: int,
    hyperparameters: dict[str, Any],
    assets: dict[str, tuple[Path, str, str, list[str]]],
    chips_href: str,
    validation: dict[str, Any] | None = None,
) -> pystac.Item:
    """`assets`: key -> (path, media type, title, roles); the key `weights` is the model artifact."""
    shape = [-1, config.n_in, config.chip_size, config.chip_size]
    classes = [c.to_classification() for c in scheme.classes]
    item = pystac.Item(
        id=identifier,
        geometry=mapping(box(*bbox)),
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": temporal[0],
            "end_datetime": temporal[1],
            "mlm:name": identifier,
            "mlm:architecture": ARCHITECTURE_TITLES[config.architecture].format(encoder=config.encoder),
            "mlm:tasks": ["semantic-segmentation"],
            "mlm:framework": "pytorch" if config.is_network else "lightgbm",
            "mlm:framework_version": torch.__version__.split("+")[0] if config.is_network else _lightgbm_version(),
            "mlm:total_parameters": parameters,
            "mlm:pretrained": pretrained_source is not None,
            "mlm:pretrained_source": pretrained_source,
            "mlm:batch_size_suggestion": batch_size,
            "mlm:accelerator": "cuda" if device.type == "cuda" else "amd64",
            "mlm:accelerator_constrained": False,
            "mlm:hyperparameters": hyperparameters,
            "mlm:input": [
                {
                    "name": f"features ({config.input_mode})",
                    "description": "Bands and NDVI/NDWI/NDBI"
                    + (" for every date, date-major" if config.input_mode == "stack" else " of one date"),
                    "bands": config.channels,
                    "input": {
                        "shape": shape,
                        "dim_order": ["batch", "channel", "height", "width"],
                        "data_type": "float32",
                    },
                    "value_scaling": [
                        {"type": "z-score", "mean": m, "stddev": s}
                        for m, s in zip(config.mean, config.std, strict=True)
                    ],
                    "resize_type": None,
                    "pre_processing_function": None,
                }
            ],
            "mlm:output": [
                {
                    "name": "classes",
                    "tasks": ["semantic-segmentation"],
                    "result": {
                        "shape": [-1, config.n_out, config.chip_size, config.chip_size],
                        "dim_order": ["batch", "channel", "height", "width"],
                        "data_type": "float32",
                    },
                    "classification:classes": classes,
                    "post_processing_function": None,
                }
            ],
        },
        stac_extensions=[MLM_EXTENSION, CLASSIFICATION_EXTENSION, RASTER_EXTENSION],
    )
    item.properties["deep-lulc:architecture"] = config.architecture
    if validation is not None:
        item.properties["deep-lulc:validation"] = validation
    for key, (path, media_type, title, roles) in assets.items():
        extra: dict[str, Any] = {}
        if key == "weights":
            # MLM ties input band names to raster:bands names on the model asset.
            extra = {
                "mlm:artifact_type": "safetensors" if config.is_network else "lightgbm.Booster.save_model",
                "raster:bands": [{"name": name, "data_type": "float32"} for name in config.channels],
            }
        item.add_asset(
            key, pystac.Asset(str(path), title=title, media_type=media_type, roles=roles, extra_fields=extra)
        )
    stamp_provenance(item, derived_from=[chips_href])
    return item


def _lightgbm_version() -> str:
    import lightgbm

    return str(lightgbm.__version__)

"""What training starts from: the chips split in two, the network's configuration and datasets, and the
fingerprint that tells whether a checkpoint left by an earlier run belongs to this one."""

from __future__ import annotations

import hashlib
import json

import torch

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.windows import DEFAULT_OVERLAP, DEFAULT_WINDOW
from deep_lulc.shared.io import storage
from deep_lulc.shared.models.architectures import ArchitectureSpec
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.chips import TRAIN, VALIDATION, ChipRecord, ChipSet
from deep_lulc.shared.version import __version__
from deep_lulc.stages.train.chips_data import ChipDataset
from deep_lulc.stages.train.params import TrainInputs, TrainParams


def check_device(params: TrainParams, spec: ArchitectureSpec, device: torch.device) -> None:
    """An explicit --device cuda for a model that never touches the GPU is a mistake worth naming."""
    if not spec.network and device.type == "cuda" and params.device == "cuda":
        raise BadInputError(
            f"--device cuda needs a network; {params.architecture} runs on the CPU", fix="use --device auto or cpu"
        )


def training_splits(source: ChipSet) -> tuple[list[ChipRecord], list[ChipRecord]]:
    """The training and validation chips; both are needed, the second to choose and score the model."""
    train_records, valid_records = source.split(TRAIN), source.split(VALIDATION)
    if not train_records or not valid_records:
        raise BadInputError(
            f"chips hold {len(train_records)} training and {len(valid_records)} validation chips",
            fix="rebuild the chips with --val-fraction between 0 and 1 and enough --count",
        )
    return train_records, valid_records


def model_config(source: ChipSet, params: TrainParams, spec: ArchitectureSpec) -> ModelConfig:
    """The network's inputs (channels, their normalisation) and outputs as the chips define them."""
    mean, std = source.input_statistics(params.input_mode)
    stacked = params.input_mode == "stack"
    return ModelConfig(
        encoder=params.encoder_name if "encoder" in spec.options else params.architecture,
        n_in=len(source.channels) if stacked else len(source.features),
        n_out=max(source.scheme.values) + 1,
        chip_size=source.chip_size,
        input_mode=params.input_mode,
        channels=list(source.channels) if stacked else list(source.features),
        features=list(source.features),
        dates=list(source.dates),
        mean=[round(float(v), 6) for v in mean],
        std=[round(float(v), 6) for v in std],
        class_values=source.scheme.values,
        class_names=[c.name for c in source.scheme.classes],
        nodata=source.scheme.nodata,
        architecture=params.architecture,
        window=DEFAULT_WINDOW,
        overlap=DEFAULT_OVERLAP,
    )


def chip_datasets(
    source: ChipSet, params: TrainParams, train_records: list[ChipRecord], valid_records: list[ChipRecord]
) -> dict[str, ChipDataset]:
    """Both splits normalised by the unrounded training statistics; only the training chips are augmented."""
    mean, std = source.input_statistics(params.input_mode)
    n_dates = len(source.dates)
    return {
        split: ChipDataset(
            records, mode=params.input_mode, n_dates=n_dates, mean=mean, std=std, augment=augment, seed=params.seed
        )
        for split, records, augment in ((TRAIN, train_records, True), (VALIDATION, valid_records, False))
    }


def request_fingerprint(
    inputs: TrainInputs, params: TrainParams, config: ModelConfig, records: list[ChipRecord]
) -> str:
    """What makes two runs the same training: the version, the inputs, every param that shapes training
    (not --resume, --overwrite or --device), the chips' statistics and their ids and sizes."""
    document = {
        "version": __version__,
        "inputs": {name: storage.redact(storage.normalize_href(href)) for name, href in sorted(inputs.hrefs().items())},
        "params": params.model_dump(mode="json", exclude={"resume", "overwrite", "device"}),
        "config": json.loads(config.to_json()),
        "chips": [[r.item_id, r.split, r.image_size, r.label_size] for r in records],
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

"""How one predict run infers: on which device, in batches of how many windows, and how the blended
probabilities become the class and probability COGs."""

from __future__ import annotations

import numpy as np
import torch

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.windows import Span
from deep_lulc.shared.models.devices import pick_device
from deep_lulc.shared.models.inference import FeatureSource, InferenceSetup, predict_region
from deep_lulc.shared.models.networks import ModelConfig
from deep_lulc.shared.products.class_map import PredictionWriters, percent
from deep_lulc.shared.stage.progress import progress_bar
from deep_lulc.stages.predict.model_loading import LoadedModel
from deep_lulc.stages.predict.region import Region


def choose_device(option: str, config: ModelConfig) -> torch.device:
    """The `--device` for a network; a pixel classifier runs on the CPU, and asking for CUDA is refused."""
    if not config.is_network and option == "cuda":
        raise BadInputError(
            f"--device cuda needs a network, but the model is a {config.architecture} pixel classifier "
            "(it runs on the CPU)",
            fix="leave --device out (auto) or use --device cpu, or pass a U-Net model",
        )
    return pick_device(option if config.is_network else "cpu")


def inference_setup(
    config: ModelConfig, region: Region, *, batch_size: int | None, device: torch.device
) -> InferenceSetup:
    return InferenceSetup.for_model(
        config,
        window=region.window,
        overlap=region.overlap,
        batch_size=batch_size or (8 if device.type == "cuda" else 1),  # CPU: larger batches only cost memory
        device=device,
    )


def predict_into(
    writers: PredictionWriters, model: LoadedModel, source: FeatureSource, region: Region, setup: InferenceSetup
) -> None:
    """Run the model over the region's windows and write each blended block as classes (nodata where nothing
    was observed) and probability percents; the COGs are finished, or abandoned on any failure."""
    scheme, core = model.scheme, region.core
    labelled = [c.value for c in scheme.labelled]
    bar = progress_bar(total=len(region.windows), what="predict", unit="window")

    def emit(rows: Span, cols: Span, probabilities: np.ndarray) -> None:
        observed = source.observed(rows, cols)
        classes = probabilities.argmax(axis=0).astype(np.uint8)
        classes[~observed] = scheme.nodata
        row, col = rows.start - core.rows.start, cols.start - core.cols.start
        writers.write_classes(classes, row=row, col=col)
        writers.write_probabilities(percent(probabilities, labelled, observed), row=row, col=col)

    def progress(count: int) -> None:
        bar.update(count)

    try:
        predict_region(
            model.network, source, core=core, windows=region.windows, setup=setup, emit=emit, progress=progress
        )
        writers.finish()
    except BaseException:
        writers.abandon()
        raise
    finally:
        bar.close()

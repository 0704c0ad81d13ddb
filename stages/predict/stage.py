"""`deep-lulc predict`: the trained U-Net over a features grid, or over one tile of it, to a class COG."""

from __future__ import annotations

import logging
import time

import pystac

from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.models.inference import FeatureSource
from deep_lulc.shared.products.class_map import PredictionWriters, class_fractions, prediction_item
from deep_lulc.shared.products.features import open_features
from deep_lulc.shared.products.tiles import planned_tile
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.predict.inference import choose_device, inference_setup, predict_into
from deep_lulc.stages.predict.model_loading import check_inputs_match, load_model, read_model_item
from deep_lulc.stages.predict.params import PredictInputs, PredictParams
from deep_lulc.stages.predict.region import plan_region

STAGE = "predict"
log = logging.getLogger(__name__)


def _period(features: pystac.Item) -> tuple[str, str]:
    return str(features.properties["start_datetime"]), str(features.properties["end_datetime"])


@idempotent(STAGE)
def run(*, inputs: PredictInputs, output: str, params: PredictParams) -> StageResult:
    """Predict the features at `inputs.features` with the model at `inputs.model` into `output`."""
    planned = planned_tile(params.tiles, params.tile)  # a bad plan fails before the model or features are read
    model_item = read_model_item(inputs.model)
    device = choose_device(params.device, model_item.config)
    features_item, dataset = open_features(inputs.features, lazy=False)
    for warning in check_inputs_match(model_item.config, dataset):
        log.warning("%s", warning)
    region = plan_region(params, planned, features_item, model_item.config, model_id=model_item.item.id)
    model = load_model(model_item)
    setup = inference_setup(model.config, region, batch_size=params.batch_size, device=device)
    identifier = region.identifier
    started = time.perf_counter()
    log.info("predicting %s on %s", region.describe(), device)

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        writers = PredictionWriters(folder, region.out_grid, model.scheme, probabilities=params.probabilities)
        predict_into(writers, model, FeatureSource(dataset), region, setup)
        seconds = time.perf_counter() - started
        item = prediction_item(
            identifier,
            folder=folder,
            grid=region.out_grid,
            scheme=model.scheme,
            period=_period(features_item),
            derived_from=[
                features_item.get_self_href() or features_item.id,
                model.item.get_self_href() or model.item.id,
            ],
            record=region.record(model.item.id),
            class_pixels=writers.pixel_counts(),
            probabilities=params.probabilities,
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id=identifier,
            description=f"LULC prediction {identifier}",
            stage=STAGE,
            inputs=inputs,
            params=params.model_copy(
                update={"tile_size": setup.window, "overlap": setup.overlap, "batch_size": setup.batch_size}
            ),
        )
    log.info("predicted %d px in %.1f s (%.0f px/s)", region.pixels, seconds, region.pixels / max(seconds, 1e-9))
    extra = {
        "classes": storage.join_href(output, identifier, "classes.tif"),
        "pixels": region.pixels,
        "seconds": round(seconds, 2),
        "class_fractions": class_fractions(item),
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

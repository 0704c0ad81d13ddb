"""`deep-lulc predict`: the trained U-Net over a features grid, or over one tile of it, to a class COG."""

from __future__ import annotations

import logging
import time

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, describe, geobox_of, same_grid
from deep_lulc.shared.geo.windows import PixelWindow, Span, window_grid, windows_touching
from deep_lulc.shared.io import storage
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.models.devices import pick_device
from deep_lulc.shared.models.inference import FeatureSource, InferenceSetup, predict_region
from deep_lulc.shared.products.class_map import PredictionWriters, grid_record, percent, prediction_item
from deep_lulc.shared.products.features import open_features
from deep_lulc.shared.products.tiles import Tile, planned_tile
from deep_lulc.shared.stage.contract import StageResult, finish_single_item_output
from deep_lulc.shared.stage.progress import progress_bar
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.predict.model_loading import check_inputs_match, load_model, read_model_item
from deep_lulc.stages.predict.params import PredictInputs, PredictParams

STAGE = "predict"
log = logging.getLogger(__name__)


def prediction_id(features_id: str) -> str:
    return f"prediction-{features_id.removeprefix('features-')}"


def _whole_grid(tile: Tile, features: GeoBox) -> tuple[GeoBox, PixelWindow]:
    """The map's grid and where the features sit on it: the whole grid (a fan-out of predict alone), or just the
    tile's read region (a fan-out from cube onward, the features built for this tile only)."""
    planned = tile.grid()
    size = (tile.grid_height, tile.grid_width)
    if (features.height, features.width) == size and (planned is None or same_grid(planned, features)):
        return features, PixelWindow.at(0, 0, *size)
    if planned is not None and same_grid(tile.read_grid(), features):
        return planned, tile.read_window
    expected = (
        f"{size[0]} x {size[1]} px"
        if planned is None
        else f"{describe(planned)} (or its tile's {describe(tile.read_grid())})"
    )
    raise BadInputError(
        f"the tiles were planned for {expected}, the features are {describe(features)}",
        fix="run `deep-lulc plan-tiles` on these features, or pass the features built for this tile",
    )


def _tile_and_window(
    params: PredictParams, tile: Tile | None, validated: tuple[int, int] | None
) -> tuple[Tile | None, int, int]:
    """The window: explicit, else the tiles file's, else the one the model's maps were validated with."""
    if tile is None:
        window, overlap = params.window(validated)
        return None, window, overlap
    window, overlap = params.window((tile.window_size, tile.overlap))
    if (window, overlap) != (tile.window_size, tile.overlap):
        raise BadInputError(
            f"--tile-size {window} / --overlap {overlap} differ from the plan's {tile.window_size} / {tile.overlap}; "
            "tiles would not blend like one map",
            fix="leave --tile-size and --overlap out in tile mode (they come from the tiles file)",
        )
    return tile, window, overlap


@idempotent(STAGE)
def run(*, inputs: PredictInputs, output: str, params: PredictParams) -> StageResult:
    """Predict the features at `inputs.features` with the model at `inputs.model` into `output`."""
    planned = planned_tile(params.tiles, params.tile)  # a bad plan fails before the model or features are read
    model_item = read_model_item(inputs.model)
    if not model_item.config.is_network and params.device == "cuda":
        raise BadInputError(
            f"--device cuda needs a network, but the model is a {model_item.config.architecture} pixel classifier "
            "(it runs on the CPU)",
            fix="leave --device out (auto) or use --device cpu, or pass a U-Net model",
        )
    device = pick_device(params.device if model_item.config.is_network else "cpu")
    features_item, dataset = open_features(inputs.features, lazy=False)
    for warning in check_inputs_match(model_item.config, dataset):
        log.warning("%s", warning)
    features_grid = geobox_of(features_item)
    grid, held = (features_grid, PixelWindow.at(0, 0, *features_grid.shape))
    if planned is not None:
        grid, held = _whole_grid(planned, features_grid)
    wanted = model_item.config
    validated = (wanted.window, wanted.overlap) if wanted.window is not None and wanted.overlap is not None else None
    tile, window, overlap = _tile_and_window(params, planned, validated)
    whole_core = tile.core if tile else PixelWindow(Span(0, grid.height), Span(0, grid.width))
    # Windows sit on the whole map's grid; the features may hold only part of it, so count from their corner.
    windows = [
        w.relative_to(held.row, held.col)
        for w in windows_touching(window_grid(grid.height, grid.width, window, overlap), whole_core)
    ]
    core = whole_core.relative_to(held.row, held.col)
    model = load_model(model_item)
    config, scheme = model.config, model.scheme
    batch_size = params.batch_size or (8 if device.type == "cuda" else 1)  # CPU: larger batches only cost memory
    setup = InferenceSetup(
        window=window,
        overlap=overlap,
        batch_size=batch_size,
        device=device,
        input_mode=config.input_mode,
        mean=np.asarray(config.mean, dtype=np.float32),
        std=np.maximum(np.asarray(config.std, dtype=np.float32), 1e-6),
        n_out=config.n_out,
        nodata=config.nodata,
    )
    source = FeatureSource(dataset)
    whole = prediction_id(features_item.id)
    if tile is not None:
        whole = whole.removesuffix(f"-tile-{tile.id}")  # features built for this tile: the map is still the AOI's
    identifier = f"{whole}-tile-{tile.id}" if tile else whole
    out_grid = grid[whole_core.rows.start : whole_core.rows.stop, whole_core.cols.start : whole_core.cols.stop]
    labelled = [c.value for c in scheme.labelled]
    started = time.perf_counter()
    log.info(
        "predicting %d x %d px in %d windows of %d px (overlap %d) on %s",
        core.width,
        core.height,
        len(windows),
        window,
        overlap,
        device,
    )

    with staged_output(output) as staged:
        folder = staged.path / identifier
        folder.mkdir(parents=True)
        writers = PredictionWriters(folder, out_grid, scheme, probabilities=params.probabilities)
        bar = progress_bar(total=len(windows), what="predict", unit="window")

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
            predict_region(model.network, source, core=core, windows=windows, setup=setup, emit=emit, progress=progress)
            writers.finish()
        except BaseException:
            writers.abandon()
            raise
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        properties = {
            "deep-lulc:model": model.item.id,
            "deep-lulc:window": {"size": window, "overlap": overlap},
            "deep-lulc:prediction_id": whole,
            "deep-lulc:grid": grid_record(grid),
        }
        if tile is not None:
            properties["deep-lulc:tile"] = {
                "id": tile.id,
                "row": tile.row,
                "col": tile.col,
                "height": tile.height,
                "width": tile.width,
                "tiles": tile.tiles,
            }
        item = prediction_item(
            identifier,
            folder=folder,
            grid=out_grid,
            scheme=scheme,
            period=(str(features_item.properties["start_datetime"]), str(features_item.properties["end_datetime"])),
            derived_from=[
                features_item.get_self_href() or features_item.id,
                model.item.get_self_href() or model.item.id,
            ],
            properties=properties,
            class_pixels=writers.pixel_counts(),
            probabilities=params.probabilities,
        )
        catalog_href = finish_single_item_output(
            staged,
            item,
            catalog_id="prediction",
            description=f"LULC prediction {identifier}",
            stage=STAGE,
            inputs=inputs,
            params=params.model_copy(update={"tile_size": window, "overlap": overlap, "batch_size": setup.batch_size}),
        )
    pixels = core.height * core.width
    log.info("predicted %d px in %.1f s (%.0f px/s)", pixels, seconds, pixels / max(seconds, 1e-9))
    extra = {
        "classes": storage.join_href(output, identifier, "classes.tif"),
        "pixels": pixels,
        "seconds": round(seconds, 2),
        "class_fractions": item.properties["deep-lulc:class_fractions"],
    }
    return StageResult.of_item(STAGE, catalog_href, identifier, extra)

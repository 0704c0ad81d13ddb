"""The raster products (class maps, change maps, evaluations): what the writer records is what the reader gets
back, and a COG lost or cut short after writing is bad input naming it, never a traceback or nodata pixels."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pyogrio.raw
import pystac
import pytest
import rasterio
import shapely
from affine import Affine

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import GeoBox, geobox
from deep_lulc.shared.io.cog import BLOCK, CogWriter, write_cog
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.products.class_map import (
    CLASSES_FILE,
    PROBABILITIES_FILE,
    PROBABILITY_NODATA,
    PredictionWriters,
    grid_of_record,
    grid_record,
    open_class_map,
    percent,
    prediction_item,
)
from deep_lulc.shared.products.evaluation import read_metrics
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams

from ...conftest import BIN, cli_env, validate_tree
from ...resealing import reseal_links

GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 50, 70)
LABELLED = [c.value for c in SLOVENIA.labelled]


def seeded_prediction(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (n_out, rows, cols) and where something was observed, both drawn from `seed`."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(max(LABELLED) + 1, GRID.height, GRID.width)).astype(np.float32)
    logits[[v for v in range(logits.shape[0]) if v not in LABELLED]] = -np.inf
    probabilities = np.exp(logits - logits.max(axis=0))
    probabilities /= probabilities.sum(axis=0)
    observed = rng.random((GRID.height, GRID.width)) > 0.1
    return probabilities, observed


def write_prediction(directory: Path, seed: int, *, block: int = 16) -> tuple[str, np.ndarray, np.ndarray]:
    """A prediction catalog written through the product writer in shuffled windows; returns its href, the
    class codes and the probability percents it holds."""
    probabilities, observed = seeded_prediction(seed)
    classes = probabilities.argmax(axis=0).astype(np.uint8)
    classes[~observed] = SLOVENIA.nodata
    expected_percent = percent(probabilities, LABELLED, observed)
    folder = directory / "prediction-test"
    folder.mkdir(parents=True)
    writers = PredictionWriters(folder, GRID, SLOVENIA, probabilities=True)
    windows = [(row, col) for row in range(0, GRID.height, block) for col in range(0, GRID.width, block)]
    for index in np.random.default_rng(seed + 1).permutation(len(windows)):  # any order
        row, col = windows[index]
        rows, cols = slice(row, row + block), slice(col, col + block)
        writers.write_classes(classes[rows, cols], row=row, col=col)
        writers.write_probabilities(expected_percent[:, rows, cols], row=row, col=col)
    writers.finish()
    item = prediction_item(
        "prediction-test",
        folder=folder,
        grid=GRID,
        scheme=SLOVENIA,
        period=("2023-01-01T00:00:00Z", "2023-12-31T23:59:59Z"),
        derived_from=["https://example.com/model.json"],
        properties={"deep-lulc:grid": grid_record(GRID)},
        class_pixels=writers.pixel_counts(),
        probabilities=True,
    )
    catalog = pystac.Catalog(id="prediction", description="product round trip")
    catalog.add_item(item)
    return str(save_self_contained(catalog, directory)), classes, expected_percent


def test_class_map_round_trip(tmp_path: Path) -> None:
    href, classes, expected_percent = write_prediction(tmp_path, seed=3)
    assert validate_tree(href) == 2
    class_map = open_class_map(href, made_by="predict")
    assert class_map.grid == GRID
    assert class_map.scheme.to_dict() == SLOVENIA.to_dict()
    assert grid_of_record(class_map.item.properties["deep-lulc:grid"], name="test") == GRID
    with class_map.open() as dataset:
        assert np.array_equal(dataset.read(1), classes)
        assert dataset.nodata == SLOVENIA.nodata
    probabilities = class_map.probabilities()
    assert probabilities is not None
    assert probabilities.band_names() == [c.name for c in SLOVENIA.labelled]
    with probabilities.open() as dataset:
        assert np.array_equal(dataset.read(), expected_percent)
        assert dataset.nodata == PROBABILITY_NODATA
    for raster in (class_map.raster, probabilities):
        assert raster.size == Path(raster.href).stat().st_size > 0
    counts = np.bincount(classes.ravel(), minlength=256)
    fractions = class_map.item.properties["deep-lulc:class_fractions"]
    labelled = sum(int(counts[v]) for v in LABELLED)
    assert fractions == {
        c.name: round(int(counts[c.value]) / labelled, 6) for c in SLOVENIA.labelled if counts[c.value]
    }


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_deleted_or_truncated_cogs_are_bad_input_naming_them(tmp_path: Path) -> None:
    href, _, _ = write_prediction(tmp_path / "deleted", seed=4)
    (tmp_path / "deleted" / "prediction-test" / CLASSES_FILE).unlink()
    with pytest.raises(BadInputError, match=rf"'classes' COG of prediction-test .*/{CLASSES_FILE} is missing"):
        open_class_map(href, made_by="predict")

    href, _, _ = write_prediction(tmp_path / "truncated", seed=4)
    truncate(tmp_path / "truncated" / "prediction-test" / CLASSES_FILE)
    with pytest.raises(BadInputError, match=rf"/{CLASSES_FILE} is \d+ bytes but its item recorded \d+ \(truncated"):
        open_class_map(href, made_by="predict")

    href, _, _ = write_prediction(tmp_path / "probabilities", seed=4)
    class_map = open_class_map(href, made_by="predict")  # the class COG is whole
    truncate(tmp_path / "probabilities" / "prediction-test" / PROBABILITIES_FILE)
    probabilities = class_map.probabilities()
    assert probabilities is not None
    damaged = rf"'probabilities' COG of prediction-test .*/{PROBABILITIES_FILE} is \d+ bytes"
    with pytest.raises(BadInputError, match=damaged), probabilities.open():
        pass


def test_a_damaged_cog_without_a_recorded_size_is_still_bad_input(tmp_path: Path) -> None:
    """Items written before sizes were recorded: GDAL's failure to open is reported as bad input."""
    href, _, _ = write_prediction(tmp_path, seed=5)
    item_path = tmp_path / "prediction-test" / "prediction-test.json"
    document = json.loads(item_path.read_text())
    del document["assets"]["classes"]["file:size"]
    del document["assets"]["classes"]["file:checksum"]
    item_path.write_text(json.dumps(document))
    reseal_links(Path(href))
    (tmp_path / "prediction-test" / CLASSES_FILE).write_bytes(b"II*\x00 not a tiff any more")
    class_map = open_class_map(href, made_by="predict")
    assert class_map.raster.size is None
    with pytest.raises(BadInputError, match=rf"/{CLASSES_FILE} is not a readable GeoTIFF"), class_map.open():
        pass


def test_change_and_evaluate_refuse_a_truncated_class_map(tmp_path: Path) -> None:
    before, _, _ = write_prediction(tmp_path / "before", seed=6)
    after, _, _ = write_prediction(tmp_path / "after", seed=7)
    truncate(tmp_path / "after" / "prediction-test" / CLASSES_FILE)
    with pytest.raises(BadInputError, match=rf"after/prediction-test/{CLASSES_FILE} is \d+ bytes"):
        change.run(inputs={"before": before, "after": after}, output=str(tmp_path / "o1"), params=ChangeParams())
    labels = tmp_path / "labels.gpkg"
    pyogrio.raw.write(
        str(labels),
        geometry=shapely.to_wkb(np.array([shapely.box(*GRID.boundingbox)], dtype=object)),
        field_data=[np.array([2], dtype=np.int32)],
        fields=["lulc"],
        geometry_type="Polygon",
        crs="EPSG:32633",
        driver="GPKG",
    )
    with pytest.raises(BadInputError, match=rf"after/prediction-test/{CLASSES_FILE} is \d+ bytes"):
        evaluate.run(
            inputs={"prediction": after, "labels": str(labels)}, output=str(tmp_path / "o2"), params=EvaluateParams()
        )
    result = evaluate.run(
        inputs={"prediction": before, "labels": str(labels)}, output=str(tmp_path / "o3"), params=EvaluateParams()
    )
    item, metrics = read_metrics(result.catalog)
    assert item.id == "evaluation-prediction-test"
    assert metrics["overall_accuracy"] == result.extra["overall_accuracy"]
    assert item.assets["errors"].extra_fields["file:size"] == (tmp_path / "o3" / item.id / "errors.tif").stat().st_size
    truncate(tmp_path / "o3" / item.id / "metrics.json")
    with pytest.raises(BadInputError, match=r"metrics of evaluation-prediction-test .*metrics\.json is \d+ bytes"):
        read_metrics(result.catalog)
    assert not (tmp_path / "o1" / "catalog.json").exists()
    assert not (tmp_path / "o2" / "catalog.json").exists()


def test_cli_change_on_a_truncated_class_map_exits_2_with_one_line(tmp_path: Path) -> None:
    before, _, _ = write_prediction(tmp_path / "before", seed=8)
    after, _, _ = write_prediction(tmp_path / "after", seed=9)
    truncate(tmp_path / "before" / "prediction-test" / CLASSES_FILE)
    failed = subprocess.run(
        [str(BIN / "deep-lulc"), "change", "--before", before, "--after", after, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert failed.stdout == ""
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("deep-lulc change: error:")
    assert f"before/prediction-test/{CLASSES_FILE} is" in lines[0]
    assert "truncated" in lines[0]


def windowed(path: Path, grid: GeoBox, values: np.ndarray, *, block: int) -> Path:
    writer = CogWriter(path, grid, nodata=0, dtype=values.dtype.name, count=values.shape[0])
    for row in range(0, grid.height, block):
        for col in range(0, grid.width, block):
            writer.write(values[:, row : row + block, col : col + block], row=row, col=col)
    return writer.finish(overview_resampling="nearest")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_one_writer_whole_or_in_windows(tmp_path: Path, dtype: str) -> None:
    """`write_cog` (a whole array) and windows of the same writer give the same raster; narrow rasters become
    plain GeoTIFFs only when written whole (chips), wide ones are tiled COGs with overviews either way."""
    rng = np.random.default_rng(11)
    grid = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 2 * BLOCK + 20, 2 * BLOCK + 7)
    values = (rng.random((2, grid.height, grid.width)) * 200).astype(dtype)
    whole = write_cog(
        tmp_path / "whole.tif", values, transform=grid.affine, epsg=32633, nodata=0, overview_resampling="nearest"
    )
    parts = windowed(tmp_path / "parts.tif", grid, values, block=100)
    for path in (whole, parts):
        with rasterio.open(path) as dataset:
            assert np.array_equal(dataset.read(), values)
            assert dataset.overviews(1), "a COG has overviews"
            assert dataset.block_shapes[0] == (BLOCK, BLOCK)
            assert (dataset.crs.to_epsg(), dataset.transform) == (32633, grid.affine)
    assert not list(tmp_path.glob("*.scratch.tif"))
    small = geobox(32633, grid.affine, 40, 30)
    chip = write_cog(tmp_path / "chip.tif", values[:, :40, :30], transform=small.affine, epsg=32633, nodata=0)
    with rasterio.open(chip) as dataset:
        assert not dataset.overviews(1)
        assert np.array_equal(dataset.read(), values[:, :40, :30])

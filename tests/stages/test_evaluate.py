"""`deep-lulc evaluate`: scores equal a hand recount, labels in any CRS, nodata skipped, change accuracy."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pystac
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.erosion import erode_labels
from deep_lulc.shared.geo.grids import geobox, geobox_of
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams

from ..class_map_data import write_class_map_catalog
from ..conftest import BIN, cli_env, validate_tree

GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 60, 80)
FOREST, GRASSLAND, WATER, ARTIFICIAL = 2, 3, 5, 8
PARAMS = EvaluateParams(block_size=16)  # many windows, ragged edges
NODATA = SLOVENIA.nodata


def pixel_box(row0: int, col0: int, row1: int, col1: int) -> shapely.Polygon:
    """The polygon covering pixel rows row0..row1-1 and columns col0..col1-1 of GRID."""
    x0, y0 = GRID.affine @ (col0, row0)
    x1, y1 = GRID.affine @ (col1, row1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_labels(path: Path, polygons: list[shapely.Polygon], codes: list[int], crs: str = "EPSG:32633") -> str:
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array(polygons, dtype=object)),
        field_data=[np.array(codes, dtype=np.int32)],
        fields=["lulc"],
        geometry_type="Polygon",
        crs=crs,
        driver="GPKG" if path.suffix == ".gpkg" else "GeoJSON",
    )
    return str(path)


# Reference: forest on the left, grassland on the right, an unlabelled border strip at the top and bottom.
TRUTH_BOXES = [((5, 0, 55, 40), FOREST), ((5, 40, 55, 80), GRASSLAND)]


def burn(boxes: list[tuple[tuple[int, int, int, int], int]]) -> np.ndarray:
    truth = np.full((GRID.height, GRID.width), NODATA, dtype=np.uint8)
    for (row0, col0, row1, col1), value in boxes:
        truth[row0:row1, col0:col1] = value
    return truth


def reference_labels(directory: Path, boxes: list[tuple[tuple[int, int, int, int], int]], name: str) -> str:
    return write_labels(directory / name, [pixel_box(*b) for b, _ in boxes], [v for _, v in boxes])


def expected_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """Per-class IoU and overall accuracy counted by hand over pixels labelled and mapped."""
    keep = (truth != NODATA) & (predicted != NODATA)
    t, p = truth[keep], predicted[keep]
    iou = {}
    for cls in SLOVENIA.labelled:
        tp = int(((t == cls.value) & (p == cls.value)).sum())
        union = int(((t == cls.value) | (p == cls.value)).sum())
        if (t == cls.value).any():
            iou[cls.name] = tp / union
    return {
        "iou": iou,
        "accuracy": float((t == p).mean()),
        "pixels": int(keep.sum()),
        "skipped": int(((truth != NODATA) & (predicted == NODATA)).sum()),
    }


def a_map(seed: int) -> np.ndarray:
    """The reference drawn as a map with known mistakes: flipped pixels, a water patch, nodata holes."""
    rng = np.random.default_rng(seed)
    predicted = burn([((0, 0, 60, 40), FOREST), ((0, 40, 60, 80), GRASSLAND)])
    flips = rng.random(predicted.shape) < 0.1
    predicted[flips] = np.where(predicted[flips] == FOREST, GRASSLAND, FOREST)
    predicted[20:26, 30:50] = WATER
    predicted[rng.random(predicted.shape) < 0.05] = NODATA
    return predicted


def item_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


def metrics_of(catalog: str) -> dict[str, Any]:
    item = item_of(catalog)
    document: dict[str, Any] = json.loads(Path(item.assets["metrics"].get_absolute_href() or "").read_text())
    return document


def test_scores_equal_a_hand_recount(tmp_path: Path) -> None:
    predicted = a_map(0)
    prediction = write_class_map_catalog(tmp_path / "map", predicted, grid=GRID)
    labels = reference_labels(tmp_path, TRUTH_BOXES, "labels.gpkg")
    result = evaluate.run(
        inputs={"prediction": prediction, "labels": labels}, output=str(tmp_path / "out"), params=PARAMS
    )
    expected = expected_scores(burn(TRUTH_BOXES), predicted)
    assert set(result.extra["iou"]) == {"Forest", "Grassland"}  # water was predicted but never labelled
    for name, value in expected["iou"].items():
        assert result.extra["iou"][name] == pytest.approx(value, abs=1e-6)
    assert result.extra["miou"] == pytest.approx(np.mean(list(expected["iou"].values())), abs=1e-6)
    assert result.extra["overall_accuracy"] == pytest.approx(expected["accuracy"])
    assert result.extra["seed_metric"] == pytest.approx(expected["accuracy"])
    assert result.extra["pixels"] == expected["pixels"]
    assert result.extra["prediction_nodata_pixels"] == expected["skipped"] > 0
    metrics = metrics_of(result.catalog)
    counts = np.array(metrics["confusion_matrix"]["counts"])
    assert counts.sum() == expected["pixels"]
    assert metrics["per_class"]["Water"]["support"] == 0
    assert metrics["per_class"]["Water"]["precision"] == 0.0
    assert validate_tree(result.catalog) == 3
    item = item_of(result.catalog)
    assert item.id == "evaluation-prediction-test"
    assert item.properties["deep-lulc:labels"] == labels
    assert item.bbox == item_of(prediction).bbox
    assert next(link.href for link in item.links if link.rel == "derived_from").endswith("prediction-test.json")
    assert Path(item.assets["confusion_matrix"].get_absolute_href() or "").read_bytes()[:4] == b"\x89PNG"


def test_erosion_in_windows_equals_eroding_the_whole_raster(tmp_path: Path) -> None:
    boxes = [*TRUTH_BOXES, ((10, 10, 30, 25), WATER), ((33, 50, 50, 70), ARTIFICIAL)]
    predicted = a_map(1)
    prediction = write_class_map_catalog(tmp_path / "map", predicted, grid=GRID)
    labels = reference_labels(tmp_path, boxes, "labels.gpkg")
    params = PARAMS.model_copy(update={"erosion_radius": 2})
    result = evaluate.run(
        inputs={"prediction": prediction, "labels": labels}, output=str(tmp_path / "out"), params=params
    )
    expected = expected_scores(erode_labels(burn(boxes), 2, nodata=NODATA), predicted)
    assert result.extra["pixels"] == expected["pixels"]
    assert result.extra["iou"] == pytest.approx(expected["iou"], abs=1e-6)
    plain = evaluate.run(
        inputs={"prediction": prediction, "labels": labels}, output=str(tmp_path / "plain"), params=PARAMS
    )
    assert plain.extra["pixels"] > result.extra["pixels"]


def test_labels_in_wgs84_are_reprojected(tmp_path: Path) -> None:
    predicted = a_map(2)
    prediction = write_class_map_catalog(tmp_path / "map", predicted, grid=GRID)
    to_wgs84 = Transformer.from_crs(32633, 4326, always_xy=True)
    polygons = [
        shapely.transform(pixel_box(*b).segmentize(5.0), lambda xy: np.column_stack(to_wgs84.transform(*xy.T)))
        for b, _ in TRUTH_BOXES
    ]
    labels = write_labels(tmp_path / "labels.geojson", polygons, [v for _, v in TRUTH_BOXES], crs="EPSG:4326")
    result = evaluate.run(
        inputs={"prediction": prediction, "labels": labels}, output=str(tmp_path / "out"), params=PARAMS
    )
    expected = expected_scores(burn(TRUTH_BOXES), predicted)
    assert abs(result.extra["pixels"] - expected["pixels"]) <= 0.01 * expected["pixels"]
    assert result.extra["miou"] == pytest.approx(np.mean(list(expected["iou"].values())), abs=0.01)


def test_bad_labels_are_refused(tmp_path: Path) -> None:
    prediction = write_class_map_catalog(tmp_path / "map", a_map(3), grid=GRID)
    far = write_labels(tmp_path / "far.gpkg", [shapely.box(600_000, 5_000_000, 600_500, 5_000_500)], [FOREST])
    with pytest.raises(BadInputError, match=r"--labels .* do not overlap the prediction .*\(extent \[15\.2"):
        evaluate.run(inputs={"prediction": prediction, "labels": far}, output=str(tmp_path / "o1"), params=PARAMS)
    odd = write_labels(tmp_path / "odd.gpkg", [pixel_box(0, 0, 10, 10), pixel_box(10, 10, 20, 20)], [FOREST, 99])
    with pytest.raises(BadInputError, match="class codes not in the class scheme: 99"):
        evaluate.run(inputs={"prediction": prediction, "labels": odd}, output=str(tmp_path / "o2"), params=PARAMS)
    sliver = write_labels(tmp_path / "sliver.gpkg", [pixel_box(10, 10, 11, 30)], [FOREST])
    with pytest.raises(BadInputError, match="no labelled pixel falls on the map"):
        evaluate.run(
            inputs={"prediction": prediction, "labels": sliver},
            output=str(tmp_path / "o3"),
            params=PARAMS.model_copy(update={"erosion_radius": 1}),
        )
    with pytest.raises(BadInputError, match="--before-labels applies to change maps only"):
        evaluate.run(
            inputs={"prediction": prediction, "labels": sliver, "before_labels": sliver},
            output=str(tmp_path / "o4"),
            params=PARAMS,
        )
    corrupt = a_map(3)
    corrupt[0, :3] = 42
    corrupt_map = write_class_map_catalog(tmp_path / "corrupt", corrupt, grid=GRID, item_id="corrupt")
    labels = reference_labels(tmp_path, TRUTH_BOXES, "labels.gpkg")
    with pytest.raises(BadInputError, match=r"the prediction holds codes \[42\] that its classification:classes"):
        evaluate.run(inputs={"prediction": corrupt_map, "labels": labels}, output=str(tmp_path / "o5"), params=PARAMS)
    assert not any((tmp_path / name / "catalog.json").exists() for name in ("o1", "o2", "o3", "o4", "o5"))


# Change: forest on the left and grassland on the right in both years; a block of forest was built over.
BEFORE_BOXES = [((0, 0, 60, 40), FOREST), ((0, 40, 60, 80), GRASSLAND)]
AFTER_BOXES = [((0, 0, 60, 40), FOREST), ((0, 40, 60, 80), GRASSLAND), ((10, 10, 30, 30), ARTIFICIAL)]


@pytest.fixture(scope="module")
def change_case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("evaluate-change")
    rng = np.random.default_rng(4)
    truth_before, truth_after = burn(BEFORE_BOXES), burn(AFTER_BOXES)
    mapped_before = truth_before.copy()
    mapped_after = burn([*BEFORE_BOXES, ((14, 12, 34, 30), ARTIFICIAL)])  # the new block, drawn 4 rows too low
    mapped_after[28:34, 12:20] = WATER  # part of it mistaken for water: right change, wrong class
    noise = rng.random(truth_before.shape) < 0.03  # scattered false changes in both directions
    mapped_after[noise] = np.where(mapped_after[noise] == GRASSLAND, FOREST, GRASSLAND)
    mapped_before[rng.random(truth_before.shape) < 0.03] = NODATA
    before = write_class_map_catalog(
        root / "before",
        mapped_before,
        grid=GRID,
        item_id="p2019",
        start="2019-01-01T00:00:00Z",
        end="2019-12-31T23:59:59Z",
    )
    after = write_class_map_catalog(
        root / "after",
        mapped_after,
        grid=GRID,
        item_id="p2023",
        start="2023-01-01T00:00:00Z",
        end="2023-12-31T23:59:59Z",
    )
    # The recount below is pixel by pixel, so this is the raw comparison.
    changes = change.run(
        inputs={"before": before, "after": after},
        output=str(root / "change"),
        params=ChangeParams(block_size=32, method="raw"),
    )
    labels = {
        "labels": reference_labels(root, AFTER_BOXES, "after.gpkg"),
        "before_labels": reference_labels(root, BEFORE_BOXES, "before.gpkg"),
    }
    result = evaluate.run(inputs={"prediction": changes.catalog, **labels}, output=str(root / "out"), params=PARAMS)
    return {
        "result": result,
        "change": changes.catalog,
        "labels": labels,
        "root": root,
        "arrays": (truth_before, truth_after, mapped_before, mapped_after),
    }


def test_change_accuracy_equals_a_hand_recount(change_case: dict[str, Any]) -> None:
    truth_before, truth_after, mapped_before, mapped_after = change_case["arrays"]
    keep = (mapped_before != NODATA) & (mapped_after != NODATA)  # every pixel is labelled in both years
    truly = (truth_before != truth_after)[keep]
    said = (mapped_before != mapped_after)[keep]
    tp, fp, fn = int((truly & said).sum()), int((~truly & said).sum()), int((truly & ~said).sum())
    right = (mapped_before == truth_before) & (mapped_after == truth_after)
    extra = change_case["result"].extra
    assert extra["changed_pixels_true"] == tp + fn == 400 - int((~keep[10:30, 10:30]).sum())
    assert extra["changed_pixels_predicted"] == tp + fp
    assert extra["change_iou"] == pytest.approx(tp / (tp + fp + fn), abs=1e-6)
    assert extra["change_precision"] == pytest.approx(tp / (tp + fp), abs=1e-6)
    assert extra["change_recall"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    assert extra["change_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)
    assert extra["overall_accuracy"] == pytest.approx(float((truly == said).mean()))
    assert extra["transition_accuracy"] == pytest.approx(int((right[keep] & truly).sum()) / (tp + fn), abs=1e-6)
    assert 0 < extra["transition_accuracy"] < extra["change_recall"] < 1  # the water part is found but wrong
    assert extra["prediction_nodata_pixels"] == int((~keep).sum())
    metrics = metrics_of(change_case["result"].catalog)
    after_iou = {c: metrics["after_map"]["per_class"][c]["iou"] for c in ("Forest", "Grassland", "ArtificialSurface")}
    assert after_iou == pytest.approx(
        expected_scores(np.where(keep, truth_after, NODATA), mapped_after)["iou"], abs=1e-6
    )
    assert validate_tree(change_case["result"].catalog) == 3
    item = item_of(change_case["result"].catalog)
    assert item.properties["deep-lulc:evaluated"] == "change"
    assert item.properties["deep-lulc:before_labels"] == change_case["labels"]["before_labels"]


def test_change_map_needs_before_labels(change_case: dict[str, Any]) -> None:
    root = change_case["root"]
    with pytest.raises(BadInputError, match=r"is a change map.*--before-labels"):
        evaluate.run(
            inputs={"prediction": change_case["change"], "labels": change_case["labels"]["labels"]},
            output=str(root / "missing"),
            params=PARAMS,
        )


@pytest.mark.slow
def test_cli_prints_one_json_line_and_exits_2_on_bad_input(change_case: dict[str, Any], tmp_path: Path) -> None:
    """Needs `evaluate` registered in stages/cli.py."""
    labels = change_case["labels"]
    args = [
        str(BIN / "deep-lulc"),
        "evaluate",
        "--prediction",
        change_case["change"],
        "--labels",
        labels["labels"],
        "--before-labels",
        labels["before_labels"],
        "--out",
        str(tmp_path / "out"),
    ]
    completed = subprocess.run(args, capture_output=True, text=True, check=False, env=cli_env())
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["stage"] == "evaluate"
    assert document["change_f1"] == pytest.approx(change_case["result"].extra["change_f1"])
    failed = subprocess.run(
        [*args[:6], "--out", str(tmp_path / "bad")], capture_output=True, text=True, check=False, env=cli_env()
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert len(failed.stderr.strip().splitlines()) == 1
    assert "is a change map" in failed.stderr


def test_change_and_evaluation_through_s3(change_case: dict[str, Any], s3_bucket: str) -> None:
    root = change_case["root"]
    changes = change.run(
        inputs={"before": str(root / "before" / "catalog.json"), "after": str(root / "after" / "catalog.json")},
        output=f"s3://{s3_bucket}/change",
        params=ChangeParams(method="raw"),
    )
    assert changes.catalog == f"s3://{s3_bucket}/change/catalog.json"
    result = evaluate.run(
        inputs={"prediction": changes.catalog, **change_case["labels"]},
        output=f"s3://{s3_bucket}/evaluation",
        params=EvaluateParams(),
    )
    assert result.catalog == f"s3://{s3_bucket}/evaluation/catalog.json"
    for key in ("change_f1", "transition_accuracy", "changed_pixels_true", "prediction_nodata_pixels"):
        assert result.extra[key] == change_case["result"].extra[key]


# --- The error map --------------------------------------------------------------------------------------------


def read_asset(catalog: str, key: str) -> tuple[np.ndarray, Any]:
    """(pixels, profile-ish info) of a raster asset of the evaluation item."""
    with rasterio.open(Path(item_of(catalog).assets[key].get_absolute_href() or "")) as dataset:
        return np.asarray(dataset.read(1)), {
            "nodata": dataset.nodata,
            "colormap": dataset.colormap(1),
            "crs": dataset.crs.to_epsg(),
            "transform": dataset.transform,
        }


def test_error_map_is_a_recount_of_labels_and_prediction(tmp_path: Path) -> None:
    predicted = a_map(5)
    prediction = write_class_map_catalog(tmp_path / "map", predicted, grid=GRID)
    labels = reference_labels(tmp_path, TRUTH_BOXES, "labels.gpkg")
    result = evaluate.run(
        inputs={"prediction": prediction, "labels": labels}, output=str(tmp_path / "out"), params=PARAMS
    )
    truth = burn(TRUTH_BOXES)
    expected = np.zeros(truth.shape, dtype=np.uint8)
    labelled, mapped = truth != NODATA, predicted != NODATA
    expected[labelled & mapped & (predicted == truth)] = 1
    expected[labelled & mapped & (predicted != truth)] = 2
    expected[labelled & ~mapped] = 3
    errors, info = read_asset(result.catalog, "errors")
    assert np.array_equal(errors, expected)
    assert (info["nodata"], info["crs"], info["transform"]) == (0, 32633, GRID.affine)
    assert info["colormap"][0][3] == 0  # no label: transparent
    assert info["colormap"][1][:3] == (26, 152, 80)  # green
    assert info["colormap"][2][:3] == (215, 48, 39)  # red
    assert (errors == 1).sum() == round(result.extra["overall_accuracy"] * result.extra["pixels"])
    assert (errors == 3).sum() == result.extra["prediction_nodata_pixels"]
    item = item_of(result.catalog)
    listed = {c["value"]: c for c in item.assets["errors"].extra_fields["classification:classes"]}
    assert listed[0]["nodata"] is True
    assert [listed[v]["count"] for v in (1, 2, 3)] == [int((expected == v).sum()) for v in (1, 2, 3)]
    assert metrics_of(result.catalog)["error_map"] == {
        "correct": int((expected == 1).sum()),
        "wrong": int((expected == 2).sum()),
        "not_mapped": int((expected == 3).sum()),
    }
    for key in ("errors_preview", "labels_preview"):
        assert Path(item.assets[key].get_absolute_href() or "").read_bytes()[:4] == b"\x89PNG"
    assert item.assets["errors"].media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert geobox_of(item) == GRID
    assert validate_tree(result.catalog) == 3


def test_change_error_map_marks_where_the_change_call_is_wrong(change_case: dict[str, Any]) -> None:
    truth_before, truth_after, mapped_before, mapped_after = change_case["arrays"]
    mapped = (mapped_before != NODATA) & (mapped_after != NODATA)
    agree = (truth_before != truth_after) == (mapped_before != mapped_after)
    expected = np.where(mapped, np.where(agree, 1, 2), 3).astype(np.uint8)  # every pixel is labelled in both
    errors, _ = read_asset(change_case["result"].catalog, "errors")
    assert np.array_equal(errors, expected)
    extra = change_case["result"].extra
    assert int((errors == 2).sum()) == round((1 - extra["overall_accuracy"]) * int(mapped.sum()))
    for key in ("change_precision", "change_recall", "change_f1"):
        assert 0 < extra[key] < 1
    item = item_of(change_case["result"].catalog)
    assert {"errors", "errors_preview", "labels_preview"} <= set(item.assets)


def test_preview_samples_line_up_whatever_the_windows() -> None:
    from deep_lulc.shared.products.class_map import PreviewSampler

    rng = np.random.default_rng(8)
    values = rng.integers(0, 9, size=(1000, 1700))
    sampler = PreviewSampler(*values.shape, fill=-1, max_side=300)
    assert sampler.step == 6
    for row in range(0, 1000, 37):
        for col in range(0, 1700, 250):
            sampler.add(values[row : row + 37, col : col + 250], row=row, col=col)
    assert np.array_equal(sampler.values, values[::6, ::6])


# --- The demo report: labels | prediction | errors, and the two models as maps ---------------------------------


@pytest.fixture(scope="module")
def report_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Stage results for report.render: real prediction, evaluation and change catalogs on a small grid; a
    hand-made model catalog with the chip-level comparison; a LightGBM map scored by the same stage."""
    root = tmp_path_factory.mktemp("report")
    labels = {
        2023: reference_labels(root, BEFORE_BOXES, "l2023.gpkg"),
        2024: reference_labels(root, AFTER_BOXES, "l2024.gpkg"),
    }
    results: dict[str, StageResult] = {}
    for year, seed in ((2023, 11), (2024, 12)):
        start, end = f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z"
        for model in ("", "lightgbm-"):
            mapped = burn(AFTER_BOXES if year == 2024 else BEFORE_BOXES)
            flips = np.random.default_rng(seed + len(model)).random(mapped.shape) < (0.3 if model else 0.05)
            mapped[flips] = WATER
            catalog = write_class_map_catalog(
                root / f"p-{model}{year}", mapped, grid=GRID, item_id=f"p-{model}{year}", start=start, end=end
            )
            results[f"predict-{model}{year}"] = StageResult(stage="predict", catalog=catalog, items=(f"p{year}",))
            results[f"evaluate-{model}{year}"] = evaluate.run(
                inputs={"prediction": catalog, "labels": labels[year]},
                output=str(root / f"e-{model}{year}"),
                params=PARAMS,
            )
    results["features-2024"] = results["predict-2024"]  # any catalog with a thumbnail stands in for features
    results["change"] = change.run(
        inputs={"before": results["predict-2023"].catalog, "after": results["predict-2024"].catalog},
        output=str(root / "change"),
        params=ChangeParams(block_size=32),
    )
    results["evaluate-change"] = evaluate.run(
        inputs={"prediction": results["change"].catalog, "labels": labels[2024], "before_labels": labels[2023]},
        output=str(root / "e-change"),
        params=PARAMS,
    )
    model_catalog = pystac.Catalog(id="model", description="hand-made model catalog")
    model_catalog.add_item(
        pystac.Item(id="unet", geometry=None, bbox=None, datetime=dt.datetime(2024, 1, 1), properties={})
    )
    model_catalog.normalize_hrefs(str(root / "model"))
    model_catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    comparison = [{"class": "Forest", "unet_iou": 0.9, "baseline_iou": 0.7}]
    (root / "model" / "unet" / "metrics.json").write_text(json.dumps({"comparison": comparison}))
    results["train"] = StageResult(stage="train", catalog=str(root / "model" / "catalog.json"), items=("unet",))
    return {"root": root, "results": results}


def test_report_shows_errors_side_by_side_and_both_models_as_maps(report_inputs: dict[str, Any]) -> None:
    from deep_lulc.stages.demo import report

    root, results = report_inputs["root"], report_inputs["results"]
    timings = {"train": 12.5, "train-lightgbm": 1.5}
    page = report.render(str(root), results, years=(2023, 2024), timings=timings)
    pictures = re.findall(r'<img src="([^"]+)"', page)
    for picture in pictures:
        assert (root / picture).read_bytes()[:4] == b"\x89PNG", picture
    for year in (2023, 2024):
        triple = re.split(r"<h[23]>", page.split(f"<h3>{year}</h3>", 1)[1], maxsplit=1)[0]
        # labels, prediction and errors side by side, drawn for the page from the evaluation's and map's rasters
        assert re.findall(r'<img src="([^"]+)"', triple) == [
            f"report-maps/evaluation-p-{year}-labels.png",
            f"report-maps/p-{year}.png",
            f"report-maps/evaluation-p-{year}-errors.png",
        ]
    maps = page.split("U-Net vs LightGBM as maps", 1)[1].split("</table>", 1)[0]
    assert "<th>U-Net 2023</th><th>LightGBM 2023</th><th>U-Net 2024</th><th>LightGBM 2024</th>" in maps
    miou = [results[f"evaluate-{m}{y}"].extra["miou"] for y in (2023, 2024) for m in ("", "lightgbm-")]
    assert re.search(r"<td>mIoU</td>" + "".join(rf'<td class="num">.*?{v:.3f}</td>' for v in miou), maps)
    assert miou[1] < miou[0]  # the noisier LightGBM map scores lower, and the table says so
    assert "<tr><td>training (s)</td>" + "<td>12.5</td><td>1.5</td>" * 2 + "</tr>" in maps
    assert "U-Net vs LightGBM pixel classifier (validation chips, IoU)" in page
    change_section = page.split("<h2>Change 2023", 1)[1]
    for label, key in (("precision", "change_precision"), ("recall", "change_recall"), ("F1", "change_f1")):
        value = results["evaluate-change"].extra[key]
        assert re.search(rf"<td>change {label} vs labels</td><td class=\"num\">.*?{value:.3f}</td>", change_section)


def test_report_renders_without_lightgbm_maps(report_inputs: dict[str, Any]) -> None:
    from deep_lulc.stages.demo import report

    results = {k: v for k, v in report_inputs["results"].items() if "lightgbm" not in k}
    page = report.render(str(report_inputs["root"]), results, years=(2023, 2024), timings={"train": 12.5})
    maps = page.split("U-Net vs LightGBM as maps", 1)[1].split("<h2>", 1)[0]
    assert "<th>U-Net 2023</th><th>U-Net 2024</th>" in maps
    assert "LightGBM 20" not in maps
    assert "No LightGBM maps in this run" in maps
    assert "<h3>2024</h3>" in page

"""`deep-lulc sample` and `deep-lulc area`: draw a stratified sample, label it, estimate areas.

The maps are hand-made prediction items (and a change map made by the real `change` stage), so the truth of
every pixel is known and a test can label the sample as an analyst would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import pytest
import rasterio
from affine import Affine

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import geobox
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.lulc.estimation import allocate, estimate
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.area import stage as area
from deep_lulc.stages.area.params import AreaParams
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams
from deep_lulc.stages.sample import stage as sample
from deep_lulc.stages.sample.params import SampleParams

from ..class_map_data import write_class_map_catalog
from ..conftest import BIN, cli_env, validate_tree

# 1,100 px wide: wider than the 1,024 px block the strata are counted and drawn in
GRID = geobox(32633, Affine(10, 0, 500_000, 0, -10, 5_100_000), 120, 1_100)
CULTIVATED, FOREST, GRASSLAND, WATER = 1, 2, 3, 5
LABELLED = [c.value for c in SLOVENIA.labelled]
Drawn = tuple[str, StageResult, np.ndarray]  # the map's catalog, the sample's result, the map's values
ChangeMap = tuple[str, np.ndarray, np.ndarray]  # the change map's catalog, the true classes of both years


def class_map() -> np.ndarray:
    values = np.full((GRID.height, GRID.width), CULTIVATED, dtype=np.uint8)
    values[:, 500:] = FOREST
    values[:30, 1_000:] = WATER  # a rare class, partly beyond the first block
    values[100:, :40] = GRASSLAND
    values[:5, :5] = SLOVENIA.nodata
    return values


def read_points(path: str | Path) -> tuple[dict[str, Any], np.ndarray, dict[str, np.ndarray]]:
    meta, _, geometry, fields = pyogrio.raw.read(str(path), return_fids=True)
    return meta, geometry, dict(zip([str(n) for n in meta["fields"]], fields, strict=True))


def write_labelled(path: Path, source: str | Path, **columns: np.ndarray) -> Path:
    """The sample at `source` with `columns` filled in, as an analyst saves it from QGIS."""
    meta, geometry, fields = read_points(source)
    fields.update(columns)
    pyogrio.raw.write(
        str(path),
        geometry=geometry,
        field_data=list(fields.values()),
        fields=list(fields),
        geometry_type="Point",
        crs=meta["crs"],
        driver="GPKG" if path.suffix == ".gpkg" else "GeoJSON",
        layer="sample",
    )
    return path


def pixel_of(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = ~GRID.affine * (xs, ys)
    return np.floor(rows).astype(int), np.floor(cols).astype(int)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Drawn:
    root = tmp_path_factory.mktemp("sample")
    values = class_map()
    catalog = write_class_map_catalog(root / "map", values, grid=GRID)
    result = sample.run(
        inputs={"map": catalog}, output=str(root / "sample"), params=SampleParams(size=300, min_per_stratum=40)
    )
    return catalog, result, values


def test_sample_is_stratified_by_map_class_with_the_stated_allocation(drawn: Drawn) -> None:
    _, result, values = drawn
    meta, geometry, fields = read_points(result.extra["sample"])
    assert meta["crs"] == "EPSG:32633"
    import shapely

    points = shapely.from_wkb(geometry)
    rows, cols = pixel_of(shapely.get_x(points), shapely.get_y(points))
    # every point is a pixel centre whose map value is its map_class and its stratum
    np.testing.assert_array_equal(values[rows, cols], fields["map_class"].astype(int))
    assert len({(r, c) for r, c in zip(rows, cols, strict=True)}) == len(rows)  # without replacement
    pixels = {v: int((values == v).sum()) for v in (CULTIVATED, FOREST, GRASSLAND, WATER)}
    taken = {v: int((fields["map_class"] == v).sum()) for v in pixels}
    assert taken == allocate(pixels, size=300, minimum=40)
    assert min(taken.values()) >= 40  # the floor for the rare strata
    assert sum(taken.values()) == 300
    extra = {v: taken[v] - 40 for v in taken}  # the rest goes by area
    assert abs(extra[CULTIVATED] / extra[FOREST] - pixels[CULTIVATED] / pixels[FOREST]) < 0.02
    for value, count in taken.items():
        chosen = fields["map_class"] == value
        np.testing.assert_allclose(fields["inclusion_probability"][chosen], count / pixels[value])
        assert (fields["stratum_pixels"][chosen] == pixels[value]).all()
    assert np.isnan(fields["reference"].astype(float)).all()  # empty, for the analyst
    assert (cols >= 1_024).any()  # points were found in the second block too
    assert result.extra["allocation"] == {SLOVENIA.by_value(v).name: taken[v] for v in sorted(taken)}


def test_sample_item_geojson_and_reproducibility(drawn: Drawn, tmp_path: Path) -> None:
    catalog, result, _ = drawn
    assert validate_tree(result.catalog) >= 3
    item = next(iter(pystac.Catalog.from_file(result.catalog).get_items(recursive=True)))
    assert set(item.assets) >= {"points", "points_geojson"}
    geojson = json.loads(Path(item.assets["points_geojson"].get_absolute_href() or "").read_text())
    longitudes = [f["geometry"]["coordinates"][0] for f in geojson["features"]]
    assert all(14 < lon < 17 for lon in longitudes)  # WGS84, as GeoJSON requires (UTM 33N near 15 E)
    again = sample.run(
        inputs={"map": catalog}, output=str(tmp_path / "again"), params=SampleParams(size=300, min_per_stratum=40)
    )
    assert Path(again.extra["sample"]).read_bytes() == Path(result.extra["sample"]).read_bytes()
    other = sample.run(
        inputs={"map": catalog},
        output=str(tmp_path / "other"),
        params=SampleParams(size=300, min_per_stratum=40, seed=1),
    )
    assert Path(other.extra["sample"]).read_bytes() != Path(result.extra["sample"]).read_bytes()


def test_area_estimates_from_a_labelled_sample(drawn: Drawn, tmp_path: Path) -> None:
    """The analyst finds that a tenth of the mapped forest points are grassland: the estimate moves area from
    forest to grassland, and the numbers are the estimators' on exactly these points."""
    catalog, result, values = drawn
    _, _, fields = read_points(result.extra["sample"])
    mapped = fields["map_class"].astype(np.int32)
    reference = mapped.copy()
    forest = np.flatnonzero(mapped == FOREST)
    reference[forest[::10]] = GRASSLAND
    labelled = write_labelled(tmp_path / "labelled.gpkg", result.extra["sample"], reference=reference)
    found = area.run(
        inputs={"map": catalog, "sample": str(labelled)}, output=str(tmp_path / "area"), params=AreaParams()
    )
    document = json.loads((Path(found.catalog).parent / found.items[0] / "area.json").read_text())
    order = [CULTIVATED, FOREST, GRASSLAND, WATER]
    pixels = np.array([(values == v).sum() for v in LABELLED])
    index = {v: i for i, v in enumerate(LABELLED)}
    expected = estimate(
        pixels,
        np.arange(len(LABELLED)),
        np.array([index[v] for v in mapped]),
        np.array([index[v] for v in reference]),
        categories=len(LABELLED),
    )
    hectares = pixels.sum() * 100 / 10_000
    assert document["total_ha"] == pytest.approx(hectares)
    assert set(document["classes"]) == {"CultivatedLand", "Forest", "Grassland", "Water"}
    for value in order:
        record = document["classes"][SLOVENIA.by_value(value).name]
        row = expected.categories[index[value]]
        assert set(record) == {
            "value",
            "mapped_ha",
            "estimated_ha",
            "ci95_ha",
            "users_accuracy",
            "users_ci95",
            "producers_accuracy",
            "producers_ci95",
            "sample_count",
        }
        assert record["value"] == value
        assert record["mapped_ha"] == pytest.approx((values == value).sum() * 0.01)
        assert record["estimated_ha"] == pytest.approx(row.share.value * hectares, abs=1e-5)
        assert record["ci95_ha"] == pytest.approx(row.share.ci95 * hectares, abs=1e-5)
        assert record["sample_count"] == int((mapped == value).sum())
    forest_record = document["classes"]["Forest"]
    assert forest_record["estimated_ha"] < forest_record["mapped_ha"]
    assert forest_record["users_accuracy"] == pytest.approx(0.9, abs=0.01)
    assert document["classes"]["Grassland"]["estimated_ha"] > document["classes"]["Grassland"]["mapped_ha"]
    assert document["overall_accuracy"] == pytest.approx(expected.overall.value, abs=1e-6)
    assert document["error_matrix"]["names"] == ["CultivatedLand", "Forest", "Grassland", "Water"]
    csv_lines = (Path(found.catalog).parent / found.items[0] / "area.csv").read_text().splitlines()
    assert csv_lines[0].startswith("kind,name,value,mapped_ha,estimated_ha,ci95_ha")
    assert len(csv_lines) == 5
    report = (Path(found.catalog).parent / found.items[0] / "report.html").read_text()
    assert "pixel-counted ha" in report
    assert "Forest" in report
    assert validate_tree(found.catalog) >= 3


@pytest.fixture(scope="module")
def change_map(tmp_path_factory: pytest.TempPathFactory) -> ChangeMap:
    """A raw change map between two hand-made years, and the true classes of each year."""
    root = tmp_path_factory.mktemp("change-sample")
    before = class_map()
    after = before.copy()
    after[40:80, 100:300] = GRASSLAND  # cultivated land became grassland
    after[60:120, 600:700] = CULTIVATED  # forest cleared
    catalogs = {
        name: write_class_map_catalog(
            root / name,
            values,
            grid=GRID,
            item_id=f"prediction-{year}",
            start=f"{year}-01-01T00:00:00Z",
            end=f"{year}-12-31T23:59:59Z",
        )
        for name, values, year in (("before", before, 2023), ("after", after, 2024))
    }
    result = change.run(inputs=catalogs, output=str(root / "change"), params=ChangeParams(method="raw"))
    return result.catalog, before, after


def test_change_map_sample_estimates_transitions_and_later_classes(change_map: ChangeMap, tmp_path: Path) -> None:
    catalog, before, after = change_map
    drawn = sample.run(
        inputs={"map": catalog}, output=str(tmp_path / "sample"), params=SampleParams(size=200, min_per_stratum=30)
    )
    _meta, geometry, fields = read_points(drawn.extra["sample"])
    assert {"reference_from", "reference_to"} <= set(fields)
    assert set(fields["stratum"]) == {
        "CultivatedLand_to_CultivatedLand",
        "CultivatedLand_to_Grassland",
        "Forest_to_Forest",
        "Forest_to_CultivatedLand",
        "Grassland_to_Grassland",
        "Water_to_Water",
    }
    import shapely

    points = shapely.from_wkb(geometry)
    rows, cols = pixel_of(shapely.get_x(points), shapely.get_y(points))
    # the analyst labels both years from the truth (here: the two maps are right, except one point)
    truth_after = after[rows, cols].astype(np.int32)
    truth_after[0] = WATER
    labelled = write_labelled(
        tmp_path / "labelled.gpkg",
        drawn.extra["sample"],
        reference_from=before[rows, cols].astype(np.int32),
        reference_to=truth_after,
    )
    found = area.run(
        inputs={"map": catalog, "sample": str(labelled)}, output=str(tmp_path / "area"), params=AreaParams()
    )
    document = json.loads((Path(found.catalog).parent / found.items[0] / "area.json").read_text())
    transitions = document["transitions"]
    cleared = transitions["Forest_to_CultivatedLand"]
    assert cleared["mapped_ha"] == pytest.approx(60 * 100 * 0.01)
    assert cleared["users_accuracy"] in (1.0, pytest.approx(1 - 1 / cleared["sample_count"]))
    assert set(document["classes"]) >= {"CultivatedLand", "Forest", "Grassland", "Water"}
    later_total = sum(record["estimated_ha"] for record in document["classes"].values())
    assert later_total == pytest.approx(document["total_ha"])
    # the same labels as transition codes give the same estimates
    n = len(LABELLED)
    index = {v: i for i, v in enumerate(LABELLED)}
    codes = np.array(
        [1 + index[b] * n + index[a] for b, a in zip(before[rows, cols], truth_after, strict=True)], dtype=np.int32
    )
    as_codes = write_labelled(tmp_path / "codes.gpkg", drawn.extra["sample"], reference=codes)
    again = area.run(
        inputs={"map": catalog, "sample": str(as_codes)}, output=str(tmp_path / "area2"), params=AreaParams()
    )
    assert again.extra["transitions"] == found.extra["transitions"]


def test_plain_geotiff_with_a_scheme_file(tmp_path: Path) -> None:
    values = class_map()
    path = tmp_path / "lulc.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=GRID.width,
        height=GRID.height,
        count=1,
        dtype="uint8",
        crs="EPSG:32633",
        transform=GRID.affine,
        nodata=0,
    ) as dataset:
        dataset.write(values, 1)
    scheme = tmp_path / "classes.json"
    scheme.write_text(json.dumps(SLOVENIA.to_dict()))
    result = sample.run(
        inputs={"map": str(path)}, output=str(tmp_path / "out"), params=SampleParams(classes=str(scheme), size=100)
    )
    assert result.items == ("sample-lulc",)
    _, _, fields = read_points(result.extra["sample"])
    assert set(fields["map_class"].astype(int)) == {CULTIVATED, FOREST, GRASSLAND, WATER}


# --- Bad input: one line, exit 2 -------------------------------------------------------------------------------


def test_bad_samples_are_refused_naming_the_problem(drawn: Drawn, tmp_path: Path) -> None:
    catalog, result, values = drawn
    _, _, fields = read_points(result.extra["sample"])
    mapped = fields["map_class"].astype(np.int32)

    def estimate_with(name: str, **columns: np.ndarray) -> None:
        labelled = write_labelled(tmp_path / f"{name}.gpkg", result.extra["sample"], **columns)
        area.run(inputs={"map": catalog, "sample": str(labelled)}, output=str(tmp_path / name), params=AreaParams())

    with pytest.raises(BadInputError, match=r"reference class 12 of sample_id 1 .* not in the map.s class scheme"):
        estimate_with("unknown", reference=np.where(np.arange(len(mapped)) == 0, 12, mapped).astype(np.int32))
    water_unlabelled = np.where(mapped == WATER, -1, mapped).astype(np.int32)
    labelled = write_labelled(tmp_path / "partial.gpkg", result.extra["sample"], reference=water_unlabelled)
    _, geometry, partial = read_points(labelled)
    partial_path = tmp_path / "partial-null.gpkg"
    mask = mapped == WATER
    pyogrio.raw.write(
        str(partial_path),
        geometry=geometry,
        field_data=list(partial.values()),
        fields=list(partial),
        field_mask=[mask if name == "reference" else None for name in partial],
        geometry_type="Point",
        crs="EPSG:32633",
        driver="GPKG",
        layer="sample",
    )
    with pytest.raises(BadInputError, match=r"stratum Water \(0 labelled\) has fewer than two labelled points"):
        area.run(inputs={"map": catalog, "sample": str(partial_path)}, output=str(tmp_path / "p"), params=AreaParams())
    # a sample drawn from another map: the map's values under its points differ
    other_values = values.copy()
    other_values[:, 400:600] = GRASSLAND
    other = write_class_map_catalog(tmp_path / "other-map", other_values, grid=GRID, item_id="prediction-other")
    labelled = write_labelled(tmp_path / "ok.gpkg", result.extra["sample"], reference=mapped)
    with pytest.raises(BadInputError, match="the sample was drawn from another map"):
        area.run(inputs={"map": other, "sample": str(labelled)}, output=str(tmp_path / "o"), params=AreaParams())
    # a point moved off the map
    meta, geometry, fields = read_points(labelled)
    import shapely

    points = shapely.from_wkb(geometry)
    moved = shapely.points(
        shapely.get_x(points) + np.where(np.arange(len(points)) == 3, 50_000, 0), shapely.get_y(points)
    )
    off = tmp_path / "off.gpkg"
    pyogrio.raw.write(
        str(off),
        geometry=shapely.to_wkb(moved),
        field_data=list(fields.values()),
        fields=list(fields),
        geometry_type="Point",
        crs=meta["crs"],
        driver="GPKG",
        layer="sample",
    )
    with pytest.raises(BadInputError, match=r"1 sample point\(s\) lie outside the --map .*sample_id 4"):
        area.run(inputs={"map": catalog, "sample": str(off)}, output=str(tmp_path / "f"), params=AreaParams())
    assert not (tmp_path / "f").exists()  # nothing half-written


def test_cli_sample_then_area_exit_codes(drawn: Drawn, tmp_path: Path) -> None:
    catalog, result, _ = drawn
    _, _, fields = read_points(result.extra["sample"])
    labelled = write_labelled(
        tmp_path / "labelled.gpkg", result.extra["sample"], reference=fields["map_class"].astype(np.int32)
    )
    ok = subprocess.run(
        [str(BIN / "deep-lulc"), "area", "--map", catalog, "--sample", str(labelled), "--out", str(tmp_path / "a")],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    document = json.loads(ok.stdout.strip())
    assert document["stage"] == "area"
    assert document["overall_accuracy"] == 1.0
    bad = labelled.with_name("bad.gpkg")
    write_labelled(bad, labelled, reference=np.full(len(fields["map_class"]), 99, dtype=np.int32))
    failed = subprocess.run(
        [str(BIN / "deep-lulc"), "area", "--map", catalog, "--sample", str(bad), "--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("deep-lulc area: error: reference class 99")


def test_a_series_catalog_is_refused_until_one_pair_is_named(tmp_path: Path) -> None:
    """A change series holds one change map per pair: sampling (or evaluating) "the" map of its catalog would
    silently take the first pair, so the catalog is refused with the way to name one."""
    base = class_map()
    maps = []
    for year, shift in ((2022, 0), (2023, 100), (2024, 200)):
        values = base.copy()
        values[40:80, 100 : 100 + shift] = GRASSLAND
        maps.append(
            write_class_map_catalog(
                tmp_path / str(year),
                values,
                grid=GRID,
                item_id=f"prediction-{year}",
                start=f"{year}-01-01T00:00:00Z",
                end=f"{year}-12-31T23:59:59Z",
            )
        )
    series = change.run(
        inputs={"map_0000": maps[0], "map_0001": maps[1], "map_0002": maps[2]},
        output=str(tmp_path / "change"),
        params=ChangeParams(method="raw"),
    )
    with pytest.raises(BadInputError, match=r"holds 2 change maps \(change-prediction-2022-to-prediction-2023, "):
        sample.run(inputs={"map": series.catalog}, output=str(tmp_path / "s"), params=SampleParams())
    with pytest.raises(BadInputError, match="holds 2 maps"):
        evaluate.run(
            inputs={"prediction": series.catalog, "labels": "unused.gpkg"},
            output=str(tmp_path / "e"),
            params=EvaluateParams(),
        )
    pair = tmp_path / "change" / series.items[1] / f"{series.items[1]}.json"
    drawn = sample.run(inputs={"map": str(pair)}, output=str(tmp_path / "s2"), params=SampleParams(size=60))
    assert drawn.items == (f"sample-{series.items[1]}",)

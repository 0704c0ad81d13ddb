"""`deep-lulc change` over a series of yearly maps: one item per consecutive pair, a flicker is no change under
`--method consistent`, every item has a confidence COG, and the series' bad inputs are one-line errors."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from typer.testing import CliRunner

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import geobox
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.products.change import CONFIDENCE_ASSET, confidence_of, confidence_probability
from deep_lulc.shared.products.class_map import PredictionWriters, prediction_item
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams
from deep_lulc.stages.cli import app

from ..conftest import validate_tree

LABELLED = np.array([c.value for c in SLOVENIA.labelled])
N = len(LABELLED)
INDEX = {int(v): i for i, v in enumerate(LABELLED)}
CULTIVATED, FOREST, GRASSLAND, ARTIFICIAL = 1, 2, 3, 8
GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 40, 48)  # 10 m: 0.01 ha a pixel
YEARS = (2021, 2022, 2023, 2024)
FLICKER = (slice(4, 14), slice(4, 14))  # Forest, mapped Grassland in 2022 only, and unsure of it
LASTING = (slice(22, 32), slice(26, 36))  # Forest that became ArtificialSurface in 2023, surely
CLOUD = (slice(30, 36), slice(2, 10))  # no data in 2023
NO_CLEANING = {"opening_radius": 0, "min_mapping_unit": 0.0}


def region(where: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros((GRID.height, GRID.width), dtype=bool)
    mask[where] = True
    return mask


def percent_of(classes: np.ndarray, top: int | np.ndarray = 90) -> np.ndarray:
    """uint8 percent: `top` (per pixel, or one value) for the mapped class, the rest spread over the others;
    255 where no data."""
    tops = np.broadcast_to(np.asarray(top), classes.shape)
    percent = np.broadcast_to((100 - tops) // (N - 1), (N, *classes.shape)).astype(np.uint8)
    rows, cols = np.nonzero(classes != SLOVENIA.nodata)
    percent[[INDEX[int(v)] for v in classes[rows, cols]], rows, cols] = tops[rows, cols]
    percent[:, classes == SLOVENIA.nodata] = 255
    return percent


def write_year(root: Path, classes: np.ndarray, percent: np.ndarray | None, *, item_id: str, year: int) -> str:
    """A prediction catalog as `deep-lulc predict [--probabilities]` writes it; returns its catalog's href."""
    folder = root / item_id
    folder.mkdir(parents=True)
    writers = PredictionWriters(folder, GRID, SLOVENIA, probabilities=percent is not None)
    half = GRID.height // 2  # two windows, as a streamed prediction writes them
    for rows in (slice(0, half), slice(half, GRID.height)):
        writers.write_classes(classes[rows], row=rows.start, col=0)
        if percent is not None:
            writers.write_probabilities(percent[:, rows], row=rows.start, col=0)
    writers.finish()
    item = prediction_item(
        item_id,
        folder=folder,
        grid=GRID,
        scheme=SLOVENIA,
        period=(f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z"),
        derived_from=["https://example.com/model/item.json"],
        class_pixels=writers.pixel_counts(),
        probabilities=percent is not None,
    )
    catalog = pystac.Catalog(id="prediction", description="Hand-made prediction for tests")
    catalog.add_item(item)
    return str(save_self_contained(catalog, root))


@dataclass(frozen=True)
class Series:
    classes: list[np.ndarray]  # as mapped, per year
    percents: list[np.ndarray]
    catalogs: list[str]


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Series:
    """Four years of parcels mapped surely (90 %): one parcel flickers to Grassland in 2022 on weak evidence
    (55 % against 45 % Forest), one became ArtificialSurface in 2023 and stayed, a cloud hides a corner in 2023."""
    root = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(4)
    coarse = rng.choice([CULTIVATED, GRASSLAND], size=(-(-GRID.height // 12), -(-GRID.width // 12)))
    land = np.kron(coarse, np.ones((12, 12), dtype=np.int64))[: GRID.height, : GRID.width].astype(np.uint8)
    land[FLICKER] = FOREST
    land[LASTING] = FOREST
    classes, percents, catalogs = [], [], []
    for year in YEARS:
        mapped = land.copy()
        if year >= 2023:
            mapped[LASTING] = ARTIFICIAL
        percent = percent_of(mapped)
        if year == 2022:
            mapped[FLICKER] = GRASSLAND
            percent[:, *FLICKER] = 0
            percent[INDEX[GRASSLAND], *FLICKER] = 55
            percent[INDEX[FOREST], *FLICKER] = 45
        if year == 2023:
            mapped[CLOUD] = SLOVENIA.nodata
            percent[:, *CLOUD] = 255
        classes.append(mapped)
        percents.append(percent)
        catalogs.append(write_year(root / str(year), mapped, percent, item_id=f"p{year}", year=year))
    return Series(classes, percents, catalogs)


def inputs_of(catalogs: list[str]) -> ChangeInputs:
    return ChangeInputs(maps=tuple(catalogs))


def items_of(catalog: str) -> list[pystac.Item]:
    return sorted(pystac.Catalog.from_file(catalog).get_items(recursive=True), key=lambda item: item.id)


def read(item: pystac.Item, key: str) -> np.ndarray:
    with rasterio.open(item.assets[key].get_absolute_href()) as dataset:
        return np.asarray(dataset.read(1))


def changed_of(item: pystac.Item) -> np.ndarray:
    codes = read(item, "change").astype(np.int64)
    changed: np.ndarray = (codes > 0) & ((codes - 1) // N != (codes - 1) % N)
    return changed


def decoded(item: pystac.Item) -> tuple[np.ndarray, np.ndarray]:
    codes = read(item, "change").astype(np.int64)
    return np.where(codes > 0, LABELLED[(codes - 1) // N], 0), np.where(codes > 0, LABELLED[(codes - 1) % N], 0)


def test_raw_flags_the_flicker_twice_consistent_not_at_all(series: Series, tmp_path: Path) -> None:
    raw = change.run(inputs=inputs_of(series.catalogs), output=str(tmp_path / "raw"), params=ChangeParams(method="raw"))
    consistent = change.run(
        inputs=inputs_of(series.catalogs), output=str(tmp_path / "hmm"), params=ChangeParams(**NO_CLEANING)
    )
    assert consistent.extra["method"] == "consistent"  # the default for three or more maps
    raw_items, consistent_items = items_of(raw.catalog), items_of(consistent.catalog)
    assert [item.id for item in consistent_items] == [
        "change-p2021-to-p2022",
        "change-p2022-to-p2023",
        "change-p2023-to-p2024",
    ]
    flicker, lasting = region(FLICKER), region(LASTING)
    raw_changed = [changed_of(item) for item in raw_items]
    assert raw_changed[0][flicker].all()  # A -> B -> A: two changes
    assert raw_changed[1][flicker].all()
    assert not raw_changed[2][flicker].any()
    hmm_changed = [changed_of(item) for item in consistent_items]
    assert not any(changed[flicker].any() for changed in hmm_changed)
    # The lasting change is kept, in the pair it happened, from Forest to ArtificialSurface.
    assert np.array_equal(hmm_changed[1], lasting & ~region(CLOUD))
    assert not hmm_changed[0].any()
    assert not hmm_changed[2].any()
    origin, target = decoded(consistent_items[1])
    assert (origin[lasting] == FOREST).all()
    assert (target[lasting] == ARTIFICIAL).all()
    # The flicker's 2022 class is smoothed to Forest on both sides.
    origin, target = decoded(consistent_items[0])
    assert (target[flicker] == FOREST).all()
    assert consistent.extra["changed_ha"] == pytest.approx(hmm_changed[1].sum() * 0.01)
    assert raw.extra["changed_ha"] == pytest.approx(sum(c.sum() for c in raw_changed) * 0.01)


def test_series_output_lists_every_pair(series: Series, tmp_path: Path) -> None:
    result = change.run(inputs=inputs_of(series.catalogs), output=str(tmp_path / "out"), params=ChangeParams())
    assert validate_tree(result.catalog) == 5  # catalog, collection, three pair items
    assert list(result.items) == [f"change-p{a}-to-p{b}" for a, b in itertools.pairwise(YEARS)]
    pairs = result.extra["pairs"]
    assert [(p["before"], p["after"], p["item"]) for p in pairs] == [
        (f"p{a}", f"p{b}", f"change-p{a}-to-p{b}") for a, b in itertools.pairwise(YEARS)
    ]
    assert result.extra["changed_ha"] == pytest.approx(sum(p["changed_ha"] for p in pairs))
    assert result.extra["raw_changed_ha"] == pytest.approx(sum(p["raw_changed_ha"] for p in pairs))
    assert pairs[1]["changed_ha"] == pytest.approx((region(LASTING) & ~region(CLOUD)).sum() * 0.01)
    items = items_of(result.catalog)
    record = items[0].properties["deep-lulc:change_method"]
    assert record["method"] == "consistent"
    assert record["change_rate"] == ChangeParams().change_rate
    assert record["periods"] == [f"p{year}" for year in YEARS]
    assert items[1].properties["start_datetime"] == "2022-01-01T00:00:00Z"
    assert items[1].properties["end_datetime"] == "2023-12-31T23:59:59Z"
    sources = [link.href for link in items[1].links if link.rel == "derived_from"]
    assert [Path(s).name for s in sources] == ["p2022.json", "p2023.json", "p2021.json", "p2024.json"]
    for item in items:
        assert {"change", "confidence", "matrix_csv", "matrix_json", "thumbnail"} <= set(item.assets)
    collection = next(iter(pystac.Catalog.from_file(result.catalog).get_children()))
    assert isinstance(collection, pystac.Collection)
    start, end = collection.extent.temporal.intervals[0]
    assert (start and start.year, end and end.year) == (2021, 2024)
    params = json.loads((tmp_path / "out" / "params.json").read_text())
    assert sorted(params["inputs"]) == ["map_0000", "map_0001", "map_0002", "map_0003"]
    assert ChangeInputs.of(params["inputs"]) == inputs_of(series.catalogs)  # the record reads back as the series
    again = change.run(inputs=inputs_of(series.catalogs), output=str(tmp_path / "out"), params=ChangeParams())
    assert again == result  # the rerun is recognised


def test_the_cloud_is_nodata_in_its_pairs_and_no_evidence_between_them(series: Series, tmp_path: Path) -> None:
    result = change.run(inputs=inputs_of(series.catalogs), output=str(tmp_path / "out"), params=ChangeParams())
    items = items_of(result.catalog)
    cloud = region(CLOUD)
    for pair in (1, 2):
        assert (read(items[pair], "change")[cloud] == 0).all()
        assert (read(items[pair], CONFIDENCE_ASSET)[cloud] == 255).all()
    assert (read(items[0], "change")[cloud] != 0).all()
    assert (read(items[0], CONFIDENCE_ASSET)[cloud] < 10).all()


def test_consistent_confidence_is_the_pair_posterior(series: Series, tmp_path: Path) -> None:
    result = change.run(
        inputs=inputs_of(series.catalogs), output=str(tmp_path / "out"), params=ChangeParams(**NO_CLEANING)
    )
    items = items_of(result.catalog)
    with rasterio.open(confidence_of(items[1]).href) as dataset:
        probability = confidence_probability(dataset.read(1))
    lasting, flicker = region(LASTING) & ~region(CLOUD), region(FLICKER)
    assert (probability[lasting] > 0.9).all()
    assert (probability[~lasting & ~region(CLOUD)] < 0.1).all()
    assert np.isnan(probability[region(CLOUD)]).all()
    first = confidence_probability(read(items[0], CONFIDENCE_ASSET))
    assert (first[flicker] < 0.1).all()  # the weak Grassland of one year against three sure Forests


def test_joint_confidence_is_one_minus_the_probability_of_the_same_class(series: Series, tmp_path: Path) -> None:
    result = change.run(
        inputs={"before": series.catalogs[1], "after": series.catalogs[2]},
        output=str(tmp_path / "out"),
        params=ChangeParams(block_size=16),
    )
    assert "pairs" not in result.extra  # the two-map form keeps its result line
    (item,) = items_of(result.catalog)
    assert item.assets[CONFIDENCE_ASSET].extra_fields["file:size"] > 0
    p_before, p_after = (series.percents[t].astype(np.float64) for t in (1, 2))
    p_before, p_after = p_before / p_before.sum(axis=0), p_after / p_after.sum(axis=0)
    expected = np.round((1 - (p_before * p_after).sum(axis=0)) * 100)
    valid = (series.classes[1] != SLOVENIA.nodata) & (series.classes[2] != SLOVENIA.nodata)
    written = read(item, CONFIDENCE_ASSET)
    assert np.array_equal(written[valid], expected[valid])
    assert (written[~valid] == 255).all()
    assert valid.sum() < valid.size
    raw = change.run(
        inputs={"before": series.catalogs[1], "after": series.catalogs[2]},
        output=str(tmp_path / "raw"),
        params=ChangeParams(method="raw"),
    )
    (raw_item,) = items_of(raw.catalog)
    raw_confidence = read(raw_item, CONFIDENCE_ASSET)
    assert np.array_equal(raw_confidence[valid], np.where(changed_of(raw_item), 100, 0)[valid])


@pytest.mark.parametrize("method", ["consistent", "joint"])
def test_small_windows_equal_one_window(tmp_path: Path, method: str) -> None:
    """Blobs of change across window borders, unsure pixels everywhere: 16 px windows with their halo give
    what one window gives, codes and confidence, for every pair."""
    rng = np.random.default_rng(17)
    shape = (GRID.height, GRID.width)
    land = np.where(rng.random((shape[0] // 4 + 1, shape[1] // 4 + 1)) < 0.5, FOREST, GRASSLAND)
    land = np.kron(land, np.ones((4, 4), dtype=np.int64))[: shape[0], : shape[1]].astype(np.uint8)
    catalogs = []
    for index, year in enumerate(YEARS):
        for _ in range(6):
            row, col = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            height, width = rng.integers(3, 12, size=2)
            land[row : row + height, col : col + width] = rng.choice([CULTIVATED, ARTIFICIAL])
        percent = percent_of(land, top=rng.integers(75, 96, size=shape))
        mapped = land.copy()
        mapped[rng.random(shape) < 0.02] = SLOVENIA.nodata
        percent[:, mapped == SLOVENIA.nodata] = 255
        catalogs.append(write_year(tmp_path / f"y{index}", mapped, percent, item_id=f"y{year}", year=year))
    outputs = {}
    for size in (16, 512):
        params = ChangeParams(block_size=size, method=method, change_rate=0.2, min_mapping_unit=0.2, opening_radius=1)
        result = change.run(inputs=inputs_of(catalogs), output=str(tmp_path / f"o{size}"), params=params)
        outputs[size] = [(read(item, "change"), read(item, CONFIDENCE_ASSET)) for item in items_of(result.catalog)]
    assert len(outputs[16]) == 3
    for (codes, confidence), (whole_codes, whole_confidence) in zip(outputs[16], outputs[512], strict=True):
        assert np.array_equal(codes, whole_codes)
        assert np.array_equal(confidence, whole_confidence)
    for codes, _ in outputs[16]:
        origin, target = (codes.astype(int) - 1) // N, (codes.astype(int) - 1) % N
        changed = (codes > 0) & (origin != target)
        assert changed.any()  # every pair keeps some change through the cleaning
        assert changed[::16].any() or changed[:, ::16].any()  # and some of it touches a window's edge


def test_maps_without_probabilities_count_as_near_certain(series: Series, tmp_path: Path, caplog: Any) -> None:
    """The flicker mapped for sure in 2022, without probabilities: 200 to 1 for Grassland (a class at 0 % counts
    as 0.5 %). Under the default change rate that beats the 81 to 1 against a flicker; a rate that puts more
    than 200 to 1 against it lets the other three years outvote it."""
    catalogs = list(series.catalogs)
    catalogs[1] = write_year(tmp_path / "plain", series.classes[1], None, item_id="p2022", year=2022)
    flicker = region(FLICKER)
    with caplog.at_level("WARNING", logger="deep_lulc.stages.change.stage"):
        result = change.run(inputs=inputs_of(catalogs), output=str(tmp_path / "out"), params=ChangeParams())
    assert any("map 2 (p2022) has no 'probabilities' asset" in r.getMessage() for r in caplog.records)
    items = items_of(result.catalog)
    assert changed_of(items[0])[flicker].all()
    assert changed_of(items[1])[flicker].all()
    assert items[0].properties["deep-lulc:change_method"]["probabilities"]["p2022"] is False
    strict = change.run(
        inputs=inputs_of(catalogs), output=str(tmp_path / "strict"), params=ChangeParams(change_rate=0.05)
    )
    assert not any(changed_of(item)[flicker].any() for item in items_of(strict.catalog))


def test_bad_series_are_refused(series: Series, tmp_path: Path) -> None:
    first, second, third = series.catalogs[:3]
    out = str(tmp_path / "out")
    with pytest.raises(BadInputError, match=r"one map given .*: a change needs two; fix: pass --before A --after B"):
        change.run(inputs=ChangeInputs(maps=(first,)), output=out, params=ChangeParams())
    with pytest.raises(BadInputError, match="--before given together with 2 map arguments"):
        ChangeInputs(before=first, maps=(second, third))
    with pytest.raises(BadInputError, match="--after was given without --before"):
        change.run(inputs={"after": first}, output=out, params=ChangeParams())
    with pytest.raises(BadInputError, match="no maps given"):
        change.run(inputs={}, output=out, params=ChangeParams())
    with pytest.raises(
        BadInputError, match=r"not in time order: map 2 \(p2021\) starts 2021-01-01T00:00:00Z, not after"
    ):
        change.run(inputs=inputs_of([second, first, third]), output=out, params=ChangeParams())
    with pytest.raises(
        BadInputError, match=r"map 3 \(p2021\) repeats map 1 \(p2021\); fix: pass each period's map once"
    ):
        change.run(inputs=inputs_of([first, second, first]), output=out, params=ChangeParams())
    assert not (tmp_path / "out").exists()


def test_cli_takes_a_series_and_exits_2_on_one_map(series: Series, tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["change", *series.catalogs[:3], "--out", str(tmp_path / "out"), "--method", "raw"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.stdout.strip().splitlines()[-1])
    assert document["items"] == ["change-p2021-to-p2022", "change-p2022-to-p2023"]
    assert len(document["pairs"]) == 2
    failed = runner.invoke(app, ["change", series.catalogs[0], "--out", str(tmp_path / "one")])
    assert failed.exit_code == 2
    assert "deep-lulc change: error: one map given" in failed.output
    mixed = runner.invoke(
        app, ["change", *series.catalogs[:2], "--before", series.catalogs[2], "--out", str(tmp_path / "m")]
    )
    assert mixed.exit_code == 2
    assert "--before given together with 2 map arguments" in mixed.output

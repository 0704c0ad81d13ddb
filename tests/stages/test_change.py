"""`deep-lulc change`: the area matrix is a recount of the two maps, codes decode back, grids are reconciled."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.grids import epsg_of, geobox, geobox_of
from deep_lulc.shared.io.cog import CogWriter
from deep_lulc.shared.lulc.classes import SLOVENIA, ClassScheme, LulcClass
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams

from ..class_map_data import grid_bounds, write_class_map_catalog
from ..conftest import BIN, cli_env, validate_tree
from ..resealing import reseal_links

LABELLED = np.array([c.value for c in SLOVENIA.labelled])
N = len(LABELLED)
GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 70, 90)  # 10 m: a pixel is 0.01 ha
# Several windows, ragged at the right and bottom edges; the pixel-by-pixel comparison these tests recount.
SMALL_BLOCKS = ChangeParams(block_size=32, method="raw")
# The fixtures' flicker is drawn with moderate confidence (both periods ~60 % sure): these thresholds, stricter
# than the defaults, are what the flicker tests are about; the default thresholds are tuned on the demo scene.
STRICT = {"same_class_below": 0.05, "min_confidence": 0.5}


def blocky(rng: np.random.Generator, shape: tuple[int, int], cell: int, choices: np.ndarray) -> np.ndarray:
    """Random classes in `cell`-pixel squares: patches like a real map, not salt and pepper."""
    coarse = rng.choice(choices, size=(-(-shape[0] // cell), -(-shape[1] // cell)))
    return np.kron(coarse, np.ones((cell, cell), dtype=coarse.dtype))[: shape[0], : shape[1]].astype(np.uint8)


def two_maps(seed: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A before map and an after map where about a fifth of the pixels changed, both with nodata holes."""
    rng = np.random.default_rng(seed)
    before = blocky(rng, shape, 5, LABELLED)
    after = before.copy()
    changed = rng.random(shape) < 0.2
    after[changed] = rng.choice(LABELLED, size=int(changed.sum()))
    before[rng.random(shape) < 0.05] = SLOVENIA.nodata
    after[rng.random(shape) < 0.05] = SLOVENIA.nodata
    after[:3, :] = SLOVENIA.nodata  # a cloudy strip in the later year
    return before, after


def recount(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Pixels per (from, to) pair counted straight from the arrays."""
    index = {int(v): i for i, v in enumerate(LABELLED)}
    matrix = np.zeros((N, N), dtype=np.int64)
    both = (before != SLOVENIA.nodata) & (after != SLOVENIA.nodata)
    rows = np.array([index[int(v)] for v in before[both]])
    cols = np.array([index[int(v)] for v in after[both]])
    np.add.at(matrix, (rows, cols), 1)
    return matrix


def item_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


def asset_path(item: pystac.Item, key: str) -> Path:
    return Path(item.assets[key].get_absolute_href() or "")


def read_codes(item: pystac.Item) -> np.ndarray:
    with rasterio.open(asset_path(item, "change")) as dataset:
        return np.asarray(dataset.read(1))


@dataclass(frozen=True)
class Run:
    before: np.ndarray
    after: np.ndarray
    result: Any
    item: pystac.Item
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("change")
    before, after = two_maps(7, (GRID.height, GRID.width))
    inputs = {
        "before": write_class_map_catalog(
            root / "before",
            before,
            grid=GRID,
            item_id="prediction-2019",
            start="2019-01-01T00:00:00Z",
            end="2019-12-31T23:59:59Z",
        ),
        "after": write_class_map_catalog(
            root / "after",
            after,
            grid=GRID,
            item_id="prediction-2023",
            start="2023-01-01T00:00:00Z",
            end="2023-12-31T23:59:59Z",
        ),
    }
    result = change.run(inputs=inputs, output=str(root / "out"), params=SMALL_BLOCKS)
    item = item_of(result.catalog)
    summary = json.loads(asset_path(item, "matrix_json").read_text())
    return Run(before, after, result, item, summary)


def test_matrix_is_a_recount_of_the_two_maps(run: Run) -> None:
    expected = recount(run.before, run.after)
    assert np.array_equal(np.array(run.summary["pixels"]), expected)
    assert run.summary["pixel_area_m2"] == pytest.approx(100.0)
    np.testing.assert_allclose(run.summary["hectares"], expected * 0.01, atol=1e-9)
    with asset_path(run.item, "matrix_csv").open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][1:] == [c.name for c in SLOVENIA.labelled]
    assert [row[0] for row in rows[1:]] == [c.name for c in SLOVENIA.labelled]
    np.testing.assert_allclose([[float(v) for v in row[1:]] for row in rows[1:]], expected * 0.01, atol=1e-9)
    changed = (expected.sum() - np.trace(expected)) * 0.01
    assert run.result.extra["changed_ha"] == pytest.approx(changed)
    assert run.summary["stable_ha"] == pytest.approx(np.trace(expected) * 0.01)
    assert run.result.extra["changed_fraction"] == pytest.approx(changed / (expected.sum() * 0.01), abs=1e-6)
    net = run.result.extra["net_change_ha"]
    for i, cls in enumerate(SLOVENIA.labelled):
        assert net[cls.name] == pytest.approx((expected[:, i].sum() - expected[i].sum()) * 0.01)
    assert sum(net.values()) == pytest.approx(0.0, abs=1e-6)


def test_top_transitions_are_the_largest_changes(run: Run) -> None:
    expected = recount(run.before, run.after).astype(float) * 0.01
    np.fill_diagonal(expected, 0)
    top = run.result.extra["top_transitions"]
    assert len(top) == 5
    assert [t["ha"] for t in top] == sorted((t["ha"] for t in top), reverse=True)
    assert top[0]["ha"] == pytest.approx(expected.max())
    assert top[-1]["ha"] == pytest.approx(np.sort(expected, axis=None)[-5])
    names = [c.name for c in SLOVENIA.labelled]
    for entry in top:
        assert entry["from"] != entry["to"]
        assert entry["ha"] == pytest.approx(expected[names.index(entry["from"]), names.index(entry["to"])])


def test_codes_decode_back_and_nodata_propagates(run: Run) -> None:
    codes = read_codes(run.item)
    assert codes.dtype == np.uint8
    nodata = (run.before == SLOVENIA.nodata) | (run.after == SLOVENIA.nodata)
    assert np.array_equal(codes == 0, nodata)
    rng = np.random.default_rng(1)
    rows, cols = np.nonzero(~nodata)
    for k in rng.choice(len(rows), size=300, replace=False):
        row, col = rows[k], cols[k]
        source, target = divmod(int(codes[row, col]) - 1, N)  # the formula the item declares
        assert (LABELLED[source], LABELLED[target]) == (run.before[row, col], run.after[row, col])
    assert run.item.properties["deep-lulc:transition_code"] == "1 + from_index * n + to_index"
    assert run.item.properties["deep-lulc:classes"] == SLOVENIA.to_dict()


def test_only_present_transitions_are_listed(run: Run) -> None:
    codes = read_codes(run.item)
    listed = run.item.assets["change"].extra_fields["classification:classes"]
    transitions = [c for c in listed if not c.get("nodata")]
    present, counts = np.unique(codes[codes != 0], return_counts=True)
    assert [c["value"] for c in transitions] == present.tolist()
    assert [c["count"] for c in transitions] == counts.tolist()
    assert [c["value"] for c in listed if c.get("nodata")] == [0]
    forest, artificial = SLOVENIA.by_name("Forest"), SLOVENIA.by_name("ArtificialSurface")
    names = [c.name for c in SLOVENIA.labelled]
    code = 1 + names.index("Forest") * N + names.index("ArtificialSurface")
    entry = next(c for c in transitions if c["value"] == code)
    assert entry["name"] == "Forest_to_ArtificialSurface"
    assert entry["description"] == "Forest -> ArtificialSurface"
    assert entry["color_hint"] == artificial.color.lstrip("#").upper()
    stable = next(c for c in transitions if c["value"] == 1 + names.index("Forest") * (N + 1))
    assert stable["name"] == f"{forest.name}_to_{forest.name}"
    assert stable["color_hint"] == "D3D3D3"


def test_item_is_valid_and_spans_both_periods(run: Run) -> None:
    assert validate_tree(run.result.catalog) == 3
    item = run.item
    assert item.id == "change-prediction-2019-to-prediction-2023"
    assert item.properties["start_datetime"] == "2019-01-01T00:00:00Z"
    assert item.properties["end_datetime"] == "2023-12-31T23:59:59Z"
    assert geobox_of(item) == GRID
    sources = [link.href for link in item.links if link.rel == "derived_from"]
    assert len(sources) == 2
    assert sources[0].endswith("prediction-2019.json")
    assert sources[1].endswith("prediction-2023.json")
    assert asset_path(item, "thumbnail").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run.result.extra["resampled"] is False


def test_hectares_scale_with_pixel_size(tmp_path: Path) -> None:
    before, after = two_maps(11, (40, 50))
    coarse = geobox(32633, Affine(20.0, 0.0, 520_000.0, 0.0, -20.0, 5_117_000.0), 40, 50)
    inputs = {
        "before": write_class_map_catalog(tmp_path / "b", before, grid=coarse, item_id="b"),
        "after": write_class_map_catalog(tmp_path / "a", after, grid=coarse, item_id="a"),
    }
    result = change.run(inputs=inputs, output=str(tmp_path / "out"), params=SMALL_BLOCKS)
    summary = json.loads(asset_path(item_of(result.catalog), "matrix_json").read_text())
    assert summary["pixel_area_m2"] == pytest.approx(400.0)
    np.testing.assert_allclose(summary["hectares"], recount(before, after) * 0.04, atol=1e-9)


def test_finer_grid_is_resampled_with_a_warning(run: Run, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The same after-map at 5 m: every 10 m pixel centre falls on 5 m pixels of its own value.
    fine = geobox(epsg_of(GRID), Affine(5.0, 0.0, GRID.affine.c, 0.0, -5.0, GRID.affine.f), 140, 180)
    after_fine = np.kron(run.after, np.ones((2, 2), dtype=np.uint8))
    inputs = {
        "before": str(Path(run.result.catalog).parents[1] / "before" / "catalog.json"),
        "after": write_class_map_catalog(
            tmp_path / "fine",
            after_fine,
            grid=fine,
            item_id="fine",
            start="2023-01-01T00:00:00Z",
            end="2023-12-31T23:59:59Z",
        ),
    }
    with caplog.at_level(logging.WARNING, logger="deep_lulc.stages.change.stage"):
        result = change.run(inputs=inputs, output=str(tmp_path / "out"), params=SMALL_BLOCKS)
    assert any("resampling --after onto the --before grid" in r.getMessage() for r in caplog.records)
    assert result.extra["resampled"] is True
    item = item_of(result.catalog)
    assert item.properties["deep-lulc:resampled"] is True
    assert geobox_of(item) == GRID
    assert np.array_equal(read_codes(item), read_codes(run.item))
    assert validate_tree(result.catalog) == 3


def test_other_crs_is_reprojected_by_nearest_neighbour(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    before = blocky(rng, (GRID.height, GRID.width), 6, LABELLED)
    # The after map lives in the neighbouring UTM zone, on 7 m pixels covering the before map.
    west, south, east, north = Transformer.from_crs(32633, 32634, always_xy=True).transform_bounds(*grid_bounds(GRID))
    other = geobox(
        32634,
        Affine(7.0, 0.0, west - 20, 0.0, -7.0, north + 20),
        int((north - south + 40) // 7),
        int((east - west + 40) // 7),
    )
    after = blocky(rng, (other.height, other.width), 9, LABELLED)
    inputs = {
        "before": write_class_map_catalog(tmp_path / "b", before, grid=GRID, item_id="b"),
        "after": write_class_map_catalog(tmp_path / "a", after, grid=other, item_id="a"),
    }
    result = change.run(inputs=inputs, output=str(tmp_path / "out"), params=SMALL_BLOCKS)
    assert result.extra["resampled"] is True
    codes = read_codes(item_of(result.catalog))
    # Independent lookup: each before-pixel centre projected into the after map's pixel it falls in.
    cols, rows = np.meshgrid(np.arange(GRID.width) + 0.5, np.arange(GRID.height) + 0.5)
    x, y = GRID.affine @ (cols, rows)
    ox, oy = Transformer.from_crs(32633, 32634, always_xy=True).transform(x, y)
    c, r = ~other.affine @ (ox, oy)
    expected_after = after[np.floor(r).astype(int), np.floor(c).astype(int)]
    decoded_after = LABELLED[(codes.astype(int) - 1) % N]
    decoded_before = LABELLED[(codes.astype(int) - 1) // N]
    assert (codes != 0).all()
    assert np.array_equal(decoded_before, before)
    assert (decoded_after == expected_after).mean() > 0.99  # disagreements only on pixel-centre ties


def test_uint16_codes_for_many_classes(tmp_path: Path) -> None:
    palette = [f"#{(37 * k) % 256:02x}{(91 * k) % 256:02x}{(53 * k) % 256:02x}" for k in range(17)]
    scheme = ClassScheme(tuple(LulcClass(k, f"C{k}", f"class {k}", palette[k]) for k in range(17)), nodata=0)
    rng = np.random.default_rng(2)
    before = rng.integers(0, 17, (20, 24)).astype(np.uint8)
    after = rng.integers(0, 17, (20, 24)).astype(np.uint8)
    inputs = {
        "before": write_class_map_catalog(tmp_path / "b", before, grid=GRID[0:20, 0:24], scheme=scheme, item_id="b"),
        "after": write_class_map_catalog(tmp_path / "a", after, grid=GRID[0:20, 0:24], scheme=scheme, item_id="a"),
    }
    result = change.run(inputs=inputs, output=str(tmp_path / "out"), params=SMALL_BLOCKS)
    item = item_of(result.catalog)
    codes = read_codes(item).astype(int)
    assert read_codes(item).dtype == np.uint16
    assert item.assets["change"].extra_fields["raster:bands"][0]["data_type"] == "uint16"
    valid = (before != 0) & (after != 0)
    assert np.array_equal(codes != 0, valid)
    assert codes.max() > 255
    assert np.array_equal((codes[valid] - 1) // 16 + 1, before[valid])
    assert np.array_equal((codes[valid] - 1) % 16 + 1, after[valid])
    assert validate_tree(result.catalog) == 3


def test_different_schemes_and_swapped_periods_are_refused(run: Run, tmp_path: Path) -> None:
    renamed = ClassScheme(
        tuple(
            LulcClass(c.value, "Meadow" if c.name == "Grassland" else c.name, c.description, c.color)
            for c in SLOVENIA.classes
        ),
        nodata=0,
    )
    before = str(Path(run.result.catalog).parents[1] / "before" / "catalog.json")
    other = write_class_map_catalog(tmp_path / "other", run.after, grid=GRID, scheme=renamed, item_id="other")
    with pytest.raises(BadInputError, match=r"different class schemes.*code 3 is Grassland vs Meadow"):
        change.run(inputs={"before": before, "after": other}, output=str(tmp_path / "o1"), params=SMALL_BLOCKS)
    earlier = write_class_map_catalog(
        tmp_path / "early",
        run.after,
        grid=GRID,
        item_id="early",
        start="2015-01-01T00:00:00Z",
        end="2015-12-31T23:59:59Z",
    )
    with pytest.raises(BadInputError, match="swap --before and --after"):
        change.run(inputs={"before": before, "after": earlier}, output=str(tmp_path / "o2"), params=SMALL_BLOCKS)
    assert not (tmp_path / "o1" / "catalog.json").exists()


@pytest.mark.slow
def test_cli_prints_one_json_line_and_exits_2_on_bad_input(run: Run, tmp_path: Path) -> None:
    """Needs `change` registered in stages/cli.py."""
    before = str(Path(run.result.catalog).parents[1] / "before" / "catalog.json")
    after = str(Path(run.result.catalog).parents[1] / "after" / "catalog.json")
    args = [
        str(BIN / "deep-lulc"),
        "change",
        "--before",
        before,
        "--after",
        after,
        "--out",
        str(tmp_path / "out"),
        "--method",
        "raw",
    ]
    completed = subprocess.run(args, capture_output=True, text=True, check=False, env=cli_env())
    assert completed.returncode == 0, completed.stderr[-2000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["stage"] == "change"
    assert document["changed_ha"] == pytest.approx(run.result.extra["changed_ha"])
    missing = [*args[:3], str(tmp_path / "nowhere" / "catalog.json"), *args[4:]]
    failed = subprocess.run(missing, capture_output=True, text=True, check=False, env=cli_env())
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert len(failed.stderr.strip().splitlines()) == 1
    assert failed.stderr.startswith("deep-lulc change: error:")


# --- The joint decision: both periods' probabilities, then slivers and specks go --------------------------------

FOREST, GRASSLAND, WATER, ARTIFICIAL = 2, 3, 5, 8
INDEX = {int(v): i for i, v in enumerate(LABELLED)}
BLOCK = (slice(17, 28), slice(32, 43))  # a real change: 11 x 11 px = 1.21 ha, inside one parcel
SPECK = (slice(48, 52), slice(63, 67))  # a real but tiny change: 4 x 4 px = 0.16 ha, under the default unit


def add_probabilities(catalog: str, percent: np.ndarray) -> None:
    """Give the catalog's prediction item the `probabilities` asset of `predict --probabilities`: one uint8
    percent band per labelled class, 255 where the map has no data."""
    item_path = next(Path(catalog).parent.glob("*/*.json"))
    grid = geobox_of(pystac.Item.from_file(str(item_path)))
    writer = CogWriter(
        item_path.parent / "probabilities.tif",
        grid,
        nodata=255,
        count=N,
        band_descriptions=[c.name for c in SLOVENIA.labelled],
        scale=0.01,
    )
    writer.write(percent, row=0, col=0)
    writer.finish(overview_resampling="average")
    document = json.loads(item_path.read_text())
    document["assets"]["probabilities"] = {
        "href": "./probabilities.tif",
        "type": "image/tiff; application=geotiff; profile=cloud-optimized",
        "roles": ["data"],
        "raster:bands": [
            {"name": c.name, "nodata": 255, "data_type": "uint8", "scale": 0.01, "offset": 0} for c in SLOVENIA.labelled
        ],
    }
    item_path.write_text(json.dumps(document))
    reseal_links(Path(catalog))


def percent_of(
    classes: np.ndarray, *, top: int = 90, runner_up: np.ndarray | None = None, second: int = 0
) -> np.ndarray:
    """uint8 percent: `top` for the mapped class, `second` for `runner_up` where given, the rest spread evenly."""
    percent = np.zeros((N, *classes.shape), dtype=np.uint8)
    rows, cols = np.nonzero(classes != SLOVENIA.nodata)
    mapped = np.array([INDEX[int(v)] for v in classes[rows, cols]])
    if runner_up is None:
        percent[:, rows, cols] = (100 - top) // (N - 1)
        percent[mapped, rows, cols] = top
        return percent
    other = np.array([INDEX[int(v)] for v in runner_up[rows, cols]])
    percent[mapped, rows, cols] = top
    percent[other, rows, cols] = second
    percent[:, classes == SLOVENIA.nodata] = 255
    return percent


@dataclass(frozen=True)
class Flicker:
    before: np.ndarray
    after: np.ndarray
    slivers: np.ndarray  # pixels where the maps disagree only because a border moved or a class flickered
    catalogs: dict[str, str]
    probability_catalogs: dict[str, str]


@pytest.fixture(scope="module")
def flicker(tmp_path_factory: pytest.TempPathFactory) -> Flicker:
    """Parcels mapped twice: every border drawn one pixel off in the later map, isolated pixels flickering
    to another class, one real 1.21 ha change and one real 0.16 ha speck. The maps are unsure on borders and
    flickers (55/45, 52/48) and sure elsewhere (90)."""
    assert ChangeParams().min_mapping_unit > 0.16, "the speck must be under the default mapping unit"
    root = tmp_path_factory.mktemp("flicker")
    rng = np.random.default_rng(21)
    shape = (GRID.height, GRID.width)
    before = blocky(rng, shape, 15, np.array([FOREST, GRASSLAND, WATER]))
    after = before.copy()
    after[:, 1:] = np.where(before[:, 1:] != before[:, :-1], before[:, :-1], after[:, 1:])  # vertical borders
    after[1:, :] = np.where(before[1:, :] != before[:-1, :], before[:-1, :], after[1:, :])  # horizontal borders
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    flickers = (rows % 6 == 3) & (cols % 6 == 3) & (rng.random(shape) < 0.4)
    after[flickers] = np.where(before[flickers] == FOREST, GRASSLAND, FOREST)
    slivers = before != after
    for region in (BLOCK, SPECK):
        after[region] = ARTIFICIAL
        slivers[region] = False
    assert slivers.sum() > 150
    assert not ndimage.binary_erosion(slivers, structure=np.ones((3, 3), dtype=bool)).any()  # all thin
    p_before = percent_of(before)
    p_after = percent_of(after)
    p_before[:, slivers] = percent_of(before, top=55, runner_up=after, second=45)[:, slivers]
    p_after[:, slivers] = percent_of(after, top=52, runner_up=before, second=48)[:, slivers]
    catalogs, probability_catalogs = {}, {}
    for key, values, percent, year in (("before", before, p_before, 2019), ("after", after, p_after, 2023)):
        start, end = f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z"
        catalogs[key] = write_class_map_catalog(root / key, values, grid=GRID, item_id=f"p{year}", start=start, end=end)
        probability_catalogs[key] = write_class_map_catalog(
            root / f"{key}-p", values, grid=GRID, item_id=f"p{year}", start=start, end=end
        )
        add_probabilities(probability_catalogs[key], percent)
    return Flicker(before, after, slivers, catalogs, probability_catalogs)


def changed_mask(item: pystac.Item) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(changed, from value, to value) decoded from a change item's COG."""
    codes = read_codes(item).astype(np.int64)
    origin, target = LABELLED[(codes - 1) // N], LABELLED[(codes - 1) % N]
    return (codes > 0) & (origin != target), np.where(codes > 0, origin, 0), np.where(codes > 0, target, 0)


def only(region: tuple[slice, ...]) -> np.ndarray:
    mask = np.zeros((GRID.height, GRID.width), dtype=bool)
    mask[region] = True
    return mask


def test_raw_flags_every_sliver(flicker: Flicker, tmp_path: Path) -> None:
    result = change.run(inputs=flicker.probability_catalogs, output=str(tmp_path / "raw"), params=SMALL_BLOCKS)
    changed, _, _ = changed_mask(item_of(result.catalog))
    assert np.array_equal(changed, flicker.before != flicker.after)
    assert changed[flicker.slivers].all()
    assert result.extra["changed_ha"] == pytest.approx(result.extra["raw_changed_ha"])
    assert item_of(result.catalog).properties["deep-lulc:change_method"]["method"] == "raw"


def test_joint_probabilities_keep_confident_changes_only(flicker: Flicker, tmp_path: Path) -> None:
    """Without any cleaning the probabilities alone drop every border and flicker pixel."""
    params = ChangeParams(block_size=32, opening_radius=0, min_mapping_unit=0, **STRICT)
    result = change.run(inputs=flicker.probability_catalogs, output=str(tmp_path / "joint"), params=params)
    changed, origin, target = changed_mask(item_of(result.catalog))
    assert np.array_equal(changed, only(BLOCK) | only(SPECK))
    assert np.array_equal(origin[changed], flicker.before[changed])
    assert (target[changed] == ARTIFICIAL).all()
    stable = ~changed
    assert np.array_equal(origin[stable], target[stable])
    sure = stable & ~flicker.slivers
    assert np.array_equal(origin[sure], flicker.before[sure])  # where both are sure, the class both maps hold
    assert result.extra["changed_ha"] == pytest.approx(changed.sum() * 0.01)
    assert result.extra["raw_changed_ha"] == pytest.approx((flicker.before != flicker.after).sum() * 0.01)


def test_joint_with_mapping_unit_leaves_the_real_change(flicker: Flicker, tmp_path: Path) -> None:
    result = change.run(
        inputs=flicker.probability_catalogs,
        output=str(tmp_path / "joint"),
        params=ChangeParams(block_size=32, **STRICT),
    )
    item = item_of(result.catalog)
    changed, origin, target = changed_mask(item)
    assert np.array_equal(changed, only(BLOCK))
    assert np.array_equal(origin[changed], flicker.before[changed])
    assert (target[changed] == ARTIFICIAL).all()
    speck = only(SPECK)
    assert np.array_equal(origin[speck], flicker.before[speck])  # a dropped change keeps the earlier class
    assert np.array_equal(target[speck], flicker.before[speck])
    summary = json.loads(asset_path(item, "matrix_json").read_text())
    names = [c.name for c in SLOVENIA.labelled]
    matrix = np.array(summary["pixels"])
    np.fill_diagonal(matrix, 0)
    assert matrix.sum() == 121
    assert matrix[:, names.index("ArtificialSurface")].sum() == 121
    assert result.extra["changed_ha"] == pytest.approx(1.21)
    defaults = ChangeParams(**STRICT)
    assert item.properties["deep-lulc:change_method"] == {
        "method": "joint",
        "probabilities": {"before": True, "after": True},
        "same_class_below": defaults.same_class_below,
        "min_confidence": defaults.min_confidence,
        "opening_radius": defaults.opening_for("joint"),
        "min_mapping_unit_ha": defaults.min_mapping_unit,
        "min_mapping_unit_px": round(defaults.min_mapping_unit / 0.01),  # 10 m pixels: 0.01 ha each
        "raw_changed_ha": pytest.approx(result.extra["raw_changed_ha"]),
    }
    assert result.extra["method"] == "joint"
    assert validate_tree(result.catalog) == 3


def test_joint_without_probabilities_warns_and_still_drops_slivers(
    flicker: Flicker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="deep_lulc.stages.change.stage"):
        result = change.run(
            inputs=flicker.catalogs, output=str(tmp_path / "plain"), params=ChangeParams(block_size=32, **STRICT)
        )
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "--before and --after have no 'probabilities' asset" in warnings[0]
    item = item_of(result.catalog)
    changed, _, target = changed_mask(item)
    assert np.array_equal(changed, only(BLOCK))  # the opening takes the 1-px lines, the unit the speck
    assert (target[changed] == ARTIFICIAL).all()
    assert item.properties["deep-lulc:change_method"]["probabilities"] == {"before": False, "after": False}


def test_windows_with_halo_equal_the_whole_map(tmp_path: Path) -> None:
    """Blobs of every size, many across window borders: 16 px windows give what one window gives, and both
    equal an opening and a size filter done on the whole map at once."""
    rng = np.random.default_rng(13)
    shape = (GRID.height, GRID.width)
    before = blocky(rng, shape, 3, np.array([FOREST, GRASSLAND]))
    after = before.copy()
    for _ in range(45):
        row, col = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        height, width = rng.integers(1, 10, size=2)
        after[row : row + height, col : col + width] = rng.choice([WATER, ARTIFICIAL])
    before[rng.random(shape) < 0.01] = SLOVENIA.nodata
    inputs = {
        "before": write_class_map_catalog(tmp_path / "b", before, grid=GRID, item_id="b"),
        "after": write_class_map_catalog(tmp_path / "a", after, grid=GRID, item_id="a"),
    }
    codes = {}
    for size in (16, 128):
        params = ChangeParams(block_size=size, min_mapping_unit=0.3, **STRICT)
        codes[size] = read_codes(
            item_of(change.run(inputs=inputs, output=str(tmp_path / f"o{size}"), params=params).catalog)
        )
    assert np.array_equal(codes[16], codes[128])
    valid = (before != SLOVENIA.nodata) & (after != SLOVENIA.nodata)
    opened = ndimage.binary_opening(valid & (before != after), structure=np.ones((3, 3), dtype=bool))
    labels, count = ndimage.label(opened, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel())
    expected = opened & (sizes[labels] >= 30)
    assert count > 0
    assert 0 < expected.sum() < opened.sum()  # some regions are under the unit, some over
    decoded = codes[16].astype(np.int64)
    assert np.array_equal(decoded == 0, ~valid)
    assert np.array_equal(valid & ((decoded - 1) // N != (decoded - 1) % N), expected)


def test_joint_decision_on_hand_made_probabilities() -> None:
    """Pixel by pixel: two sure and different periods change; unsure ones stay, in the class both most
    likely share; two flat maps that name the same class do not change, however low P(same) is."""
    from deep_lulc.stages.change.joint import JointRule, decide

    rule = JointRule(same_below=0.3, min_confidence=0.4, opening_radius=0, unit_pixels=0)
    p_before = np.array([[0.9, 0.55, 0.45, 0.9], [0.1, 0.45, 0.15, 0.1], [0.0, 0.0, 0.40, 0.0]], dtype=np.float32)
    p_after = np.array([[0.1, 0.45, 0.45, 0.9], [0.9, 0.55, 0.05, 0.1], [0.0, 0.0, 0.50, 0.0]], dtype=np.float32)
    before = p_before.argmax(axis=0)[None]
    after = p_after.argmax(axis=0)[None]
    after[0, 3] = -1  # no data in the later map
    changed, origin, target = decide(before, after, p_before[:, None], p_after[:, None], rule)
    # Pixel 0: P(same) = 0.09 + 0.09 = 0.18, both sure: class 0 -> 1. Pixel 1: P(same) = 0.495, stable; the
    # classes tie at 0.2475 and the first wins. Pixel 2: the maps say 0 and 2 but P(same) = 0.41, stable in
    # class 0 (0.45 * 0.45 = 0.2025 beats 0.40 * 0.50 = 0.2). Pixel 3: no data later.
    assert changed.tolist() == [[True, False, False, False]]
    assert origin.tolist() == [[0, 0, 0, -1]]
    assert target.tolist() == [[1, 0, 0, -1]]
    flat = JointRule(same_below=0.5, min_confidence=0.4, opening_radius=0, unit_pixels=0)
    p = np.array([[0.45], [0.35], [0.20]], dtype=np.float32)[:, None]
    q = np.array([[0.45], [0.15], [0.40]], dtype=np.float32)[:, None]
    changed, origin, target = decide(np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1), dtype=np.int64), p, q, flat)
    # P(same) = 0.2025 + 0.0525 + 0.08 = 0.335 < 0.5, but both maps say class 0: no evidence of a change
    # (flagging such pixels tripled the false changes on the demo scene).
    assert changed.tolist() == [[False]]
    assert (origin.tolist(), target.tolist()) == ([[0]], [[0]])


def test_joint_on_a_finer_after_grid_resamples_the_probabilities(flicker: Flicker, tmp_path: Path) -> None:
    fine = geobox(epsg_of(GRID), Affine(5.0, 0.0, GRID.affine.c, 0.0, -5.0, GRID.affine.f), 140, 180)
    after_item = pystac.Item.from_file(str(next(Path(flicker.probability_catalogs["after"]).parent.glob("*/*.json"))))
    with rasterio.open(asset_path(after_item, "probabilities")) as dataset:
        percent = np.asarray(dataset.read())
    fine_catalog = write_class_map_catalog(
        tmp_path / "fine",
        np.kron(flicker.after, np.ones((2, 2), dtype=np.uint8)),
        grid=fine,
        item_id="fine",
        start="2023-01-01T00:00:00Z",
        end="2023-12-31T23:59:59Z",
    )
    add_probabilities(fine_catalog, np.kron(percent, np.ones((1, 2, 2), dtype=np.uint8)))
    inputs = {"before": flicker.probability_catalogs["before"], "after": fine_catalog}
    result = change.run(inputs=inputs, output=str(tmp_path / "out"), params=ChangeParams(block_size=32, **STRICT))
    assert result.extra["resampled"] is True
    native = change.run(
        inputs=flicker.probability_catalogs,
        output=str(tmp_path / "native"),
        params=ChangeParams(block_size=32, **STRICT),
    )
    assert np.array_equal(read_codes(item_of(result.catalog)), read_codes(item_of(native.catalog)))


def test_probabilities_of_other_classes_and_bad_methods_are_refused(flicker: Flicker, tmp_path: Path) -> None:
    catalog = write_class_map_catalog(
        tmp_path / "odd",
        flicker.after,
        grid=GRID,
        item_id="odd",
        start="2023-01-01T00:00:00Z",
        end="2023-12-31T23:59:59Z",
    )
    add_probabilities(catalog, percent_of(flicker.after))
    item_path = next(Path(catalog).parent.glob("*/*.json"))
    document = json.loads(item_path.read_text())
    document["assets"]["probabilities"]["raster:bands"] = document["assets"]["probabilities"]["raster:bands"][:-1]
    item_path.write_text(json.dumps(document))
    reseal_links(Path(catalog))
    inputs = {"before": flicker.probability_catalogs["before"], "after": catalog}
    with pytest.raises(BadInputError, match=r"'probabilities' asset of odd has bands \[.*\], not the classes"):
        change.run(inputs=inputs, output=str(tmp_path / "o1"), params=ChangeParams())
    raw = change.run(inputs=inputs, output=str(tmp_path / "o2"), params=SMALL_BLOCKS)  # raw never reads them
    assert raw.extra["method"] == "raw"
    with pytest.raises(ValueError, match="method"):
        ChangeParams(method="majority")
    args = [
        str(BIN / "deep-lulc"),
        "change",
        "--before",
        flicker.catalogs["before"],
        "--after",
        flicker.catalogs["after"],
        "--out",
        str(tmp_path / "o3"),
        "--method",
        "majority",
    ]
    failed = subprocess.run(args, capture_output=True, text=True, check=False, env=cli_env())
    assert failed.returncode == 2
    assert "error: invalid parameters: --method: Input should be 'joint', 'raw' or 'consistent'" in failed.stderr
    assert not (tmp_path / "o1" / "catalog.json").exists()

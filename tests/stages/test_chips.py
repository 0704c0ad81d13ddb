"""`deep-lulc chips`: erosion, leakage-free splits in every sampling mode, counts, statistics, label inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pystac
import pytest
import rasterio
import shapely
from rasterio.transform import from_bounds

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.erosion import disk, erode_labels
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.lulc.labels import rasterize_labels, read_labels
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.chips import stage as chips
from deep_lulc.stages.chips.params import ChipsParams
from deep_lulc.stages.chips.sampling import Chip

from ..conftest import REALDATA, validate_tree

SLOVENIA_68 = REALDATA / "pixels/eo-learn_TestEOPatch_slovenia_68-frames"


def reference_erosion(labels: np.ndarray, radius: int) -> np.ndarray:
    """Brute force: a pixel keeps its class iff every pixel within `radius` inside the raster shares it."""
    out = np.zeros_like(labels)
    height, width = labels.shape
    for y in range(height):
        for x in range(width):
            value = labels[y, x]
            if value == 0:
                continue
            keep = True
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    yy, xx = y + dy, x + dx
                    if dy * dy + dx * dx <= radius * radius and 0 <= yy < height and 0 <= xx < width:
                        keep &= bool(labels[yy, xx] == value)
            out[y, x] = value if keep else 0
    return out


def test_disk_radius_one_is_the_cross() -> None:
    np.testing.assert_array_equal(disk(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk(2).sum() == 13


def test_one_pixel_line_vanishes_and_borders_open() -> None:
    labels = np.full((9, 9), 2, dtype=np.uint8)
    labels[4, :] = 3  # a 1-px line, the rasterisation artefact the seed wanted gone
    eroded = erode_labels(labels, 1)
    assert not (eroded == 3).any()
    assert (eroded[3, :] == 0).all()
    assert (eroded[5, :] == 0).all()
    assert (eroded[:3, :] == 2).all()
    assert (eroded[6:, :] == 2).all()
    assert (erode_labels(labels, 0) == labels).all()


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1])
def test_erosion_matches_brute_force(radius: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal((40, 40)), 2.5)
    labels = np.digitize(noise, np.quantile(noise, [0.15, 0.4, 0.7, 0.9])).astype(np.uint8)  # 0..4, 0 = no label
    np.testing.assert_array_equal(erode_labels(labels, radius), reference_erosion(labels, radius))


@pytest.fixture(scope="module")
def chip_runs(tiny_features: str, tiny_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    runs = {}
    for mode in ("random", "grid", "balanced"):
        out = tmp_path_factory.mktemp(f"chips-{mode}")
        params = ChipsParams(size=16, sampling=mode, count=60, block_size=1, val_fraction=0.3, min_labelled=0.3, seed=1)
        runs[mode] = chips.run(
            inputs={"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")},
            output=str(out),
            params=params,
        ).catalog
    return runs


def chip_items(catalog: str) -> tuple[pystac.Collection, list[pystac.Item]]:
    root = pystac.Catalog.from_file(catalog)
    (collection,) = root.get_children()
    assert isinstance(collection, pystac.Collection)
    assert collection.id.startswith("chips-")
    return collection, sorted(collection.get_items(), key=lambda i: i.id)


@pytest.mark.parametrize("mode", ["random", "grid", "balanced"])
def test_no_validation_chip_overlaps_or_touches_a_training_chip(chip_runs: dict[str, str], mode: str) -> None:
    _, items = chip_items(chip_runs[mode])
    windows = [(item.properties["split"], item.properties["deep-lulc:window"]) for item in items]
    train = [Chip(w["row"], w["col"], w["size"], s, "") for s, w in windows if s == "train"]
    validation = [Chip(w["row"], w["col"], w["size"], s, "") for s, w in windows if s == "validation"]
    assert train
    assert validation
    for t in train:
        for v in validation:
            separated = abs(t.row - v.row) > t.size or abs(t.col - v.col) > t.size
            assert separated, f"{mode}: train chip at {t.row},{t.col} touches validation chip at {v.row},{v.col}"


def test_catalog_is_valid_and_counts_match_a_recount(chip_runs: dict[str, str]) -> None:
    catalog = chip_runs["balanced"]
    collection, items = chip_items(catalog)
    assert validate_tree(catalog) == 2 + len(items)
    recount: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
    for item in items:
        with rasterio.open(item.assets["label"].get_absolute_href() or "") as source:
            label = source.read(1)
        values, pixels = np.unique(label[label != 0], return_counts=True)
        for value, n in zip(values.tolist(), pixels.tolist(), strict=True):
            split = recount[item.properties["split"]]
            split[str(value)] = split.get(str(value), 0) + n
    assert collection.extra_fields["deep-lulc:class_counts"] == recount


def test_normalisation_is_the_training_split_statistics(chip_runs: dict[str, str]) -> None:
    collection, items = chip_items(chip_runs["grid"])
    stacks = []
    for item in items:
        if item.properties["split"] != "train":
            continue
        with rasterio.open(item.assets["image"].get_absolute_href() or "") as source:
            data = source.read().astype(np.float64)
            stacks.append(np.where(data == source.nodata, np.nan, data * 1e-4))
    values = np.concatenate([s.reshape(s.shape[0], -1) for s in stacks], axis=1)
    stats = collection.extra_fields["deep-lulc:normalization"]
    np.testing.assert_allclose(stats["mean"], np.nanmean(values, axis=1), atol=2e-5)
    np.testing.assert_allclose(stats["std"], np.nanstd(values, axis=1), atol=2e-5)
    names = collection.extra_fields["deep-lulc:channels"]
    assert len(names) == len(stats["mean"]) == 23 * 9
    assert names[:2] == ["B02_2023-01-01", "B03_2023-01-01"]
    with rasterio.open(items[0].assets["image"].get_absolute_href() or "") as source:
        assert list(source.descriptions) == names


@pytest.mark.xfail(
    reason="known defect: on the harder synthetic scene the split's window placement moves balanced windows off "
    "the small gravel pits; Bareland gets 2.1 % of balanced chip pixels against 4.6 % of the AOI (evenness still "
    "improves, 0.938 vs 0.903). Default sampling (random) is unaffected.",
    strict=True,
)
def test_balanced_sampling_evens_out_the_classes(chip_runs: dict[str, str]) -> None:
    def shares(catalog: str) -> np.ndarray:
        collection, _ = chip_items(catalog)
        counts = collection.extra_fields["deep-lulc:class_counts"]
        total = np.array([counts["train"].get(str(v), 0) + counts["validation"].get(str(v), 0) for v in range(1, 11)])
        return np.asarray(total / total.sum())

    def evenness(p: np.ndarray) -> float:  # normalised Shannon entropy over the classes present
        present = p[p > 0]
        return float(-(present * np.log(present)).sum() / np.log(len(present)))

    balanced, random = shares(chip_runs["balanced"]), shares(chip_runs["random"])
    # The grid run tiles the whole tiny AOI with non-overlapping cells: the classes' shares as they are.
    population = shares(chip_runs["grid"])
    print(f"class evenness: balanced {evenness(balanced):.3f}, random {evenness(random):.3f}")
    assert evenness(balanced) > evenness(random)
    rarest = np.flatnonzero(population > 0)[np.argmin(population[population > 0])]
    assert balanced[rarest] > population[rarest]


def test_split_file_round_trip(
    chip_runs: dict[str, str], tiny_features: str, tiny_catalog: Path, tmp_path: Path
) -> None:
    collection, _items = chip_items(chip_runs["random"])
    split_file = collection.assets["split"].get_absolute_href() or ""
    forced = json.loads(Path(split_file).read_text())["blocks"]
    inputs = {"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")}
    params = ChipsParams(size=16, count=60, block_size=1, val_fraction=0.3, min_labelled=0.3, seed=2)
    unforced = chips.run(inputs=inputs, output=str(tmp_path / "free"), params=params)
    own = json.loads(Path(chip_items(unforced.catalog)[0].assets["split"].get_absolute_href() or "").read_text())
    assert own["blocks"] != forced  # another seed draws other blocks...
    result = chips.run(
        inputs=inputs, output=str(tmp_path / "out"), params=params.model_copy(update={"split_file": split_file})
    )
    forced_items = chip_items(result.catalog)[1]
    assert forced_items
    for item in forced_items:  # ...unless the split file says which
        assert item.properties["split"] == forced[item.properties["deep-lulc:block"]]


@pytest.mark.needs_shared
def test_real_slovenia_parcels_reproduce_the_shipped_label_raster() -> None:
    bbox = json.loads((SLOVENIA_68 / "bbox.geojson").read_text())["coordinates"][0]
    xs, ys = [p[0] for p in bbox], [p[1] for p in bbox]
    expected = np.load(SLOVENIA_68 / "mask_timeless/LULC.npy")[..., 0]
    transform = from_bounds(min(xs), min(ys), max(xs), max(ys), width=expected.shape[1], height=expected.shape[0])
    polygons = read_labels(
        str(SLOVENIA_68 / "vector_timeless/LULC.gpkg"),
        class_column="LULC_ID",
        scheme=SLOVENIA,
        class_map={},
        target_epsg=32633,
    )
    burned = rasterize_labels(polygons, shape=expected.shape, transform=transform, epsg=32633)
    agreement = float((burned == expected).mean())
    print(f"agreement with eo-learn's LULC raster: {agreement:.4%}")
    assert agreement > 0.99


def test_labels_in_wgs84_rasterise_like_the_utm_originals(tiny_catalog: Path, tmp_path: Path) -> None:
    _meta, _, geometry, fields = pyogrio.raw.read(tiny_catalog / "labels.gpkg")
    from pyproj import Transformer

    to_wgs84 = Transformer.from_crs(32633, 4326, always_xy=True)
    polygons = shapely.transform(
        shapely.from_wkb(geometry), lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1]))
    )
    path = tmp_path / "labels-4326.fgb"
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(polygons),
        field_data=[fields[1]],
        fields=["lulc"],
        geometry_type="Polygon",
        crs="EPSG:4326",
        driver="FlatGeobuf",
    )
    transform = from_bounds(520_000, 5_115_720, 521_280, 5_117_000, width=128, height=128)
    utm = rasterize_labels(
        read_labels(
            str(tiny_catalog / "labels.gpkg"), class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633
        ),
        shape=(128, 128),
        transform=transform,
        epsg=32633,
    )
    wgs = rasterize_labels(
        read_labels(str(path), class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633),
        shape=(128, 128),
        transform=transform,
        epsg=32633,
    )
    assert (utm == wgs).mean() > 0.995


def write_polygons(
    path: Path, polygons: list[shapely.Geometry], codes: list[object], crs: str | None = "EPSG:32633"
) -> str:
    kind = np.int32 if all(isinstance(c, int) for c in codes) else object
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array(polygons, dtype=object)),
        field_data=[np.array(codes, dtype=kind)],
        fields=["lulc"],
        geometry_type="Polygon",
        crs=crs,
        driver="GPKG" if path.suffix == ".gpkg" else "GeoJSON",
    )
    return str(path)


SQUARE = shapely.box(520_100, 5_116_000, 520_500, 5_116_400)


def test_unknown_codes_are_listed_and_a_class_map_fixes_them(tmp_path: Path) -> None:
    labels = write_polygons(tmp_path / "l.gpkg", [SQUARE, SQUARE.buffer(-50), SQUARE.buffer(-100)], [41, 2, 77])
    with pytest.raises(BadInputError, match=r"class codes not in the class scheme: 41, 77.*--class-map"):
        read_labels(labels, class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633)
    mapped = read_labels(
        labels, class_column="lulc", scheme=SLOVENIA, class_map={"41": "Forest", "77": "5"}, target_epsg=32633
    )
    assert mapped.values.tolist() == [2, 2, 5]


def test_invalid_geometry_is_repaired_and_reported(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(520_100, 5_116_000), (520_500, 5_116_400), (520_500, 5_116_000), (520_100, 5_116_400)])
    assert not bowtie.is_valid
    labels = write_polygons(tmp_path / "l.gpkg", [bowtie, SQUARE], [2, 3])
    read = read_labels(labels, class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633)
    assert read.repaired == ("1",)
    assert all(g.is_valid for g in read.geometries)


def test_labels_elsewhere_and_empty_labels(tmp_path: Path) -> None:
    far = write_polygons(tmp_path / "far.gpkg", [shapely.box(100_000, 100_000, 100_500, 100_500)], [2])
    polygons = read_labels(far, class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633)
    grid = from_bounds(520_000, 5_116_000, 520_100, 5_116_100, 10, 10)
    with pytest.raises(BadInputError, match=r"do not overlap the features \(extent \[15\.2"):
        rasterize_labels(polygons, shape=(10, 10), transform=grid, epsg=32633)
    with pytest.raises(BadInputError, match="have no column 'class'"):
        read_labels(far, class_column="class", scheme=SLOVENIA, class_map={}, target_epsg=32633)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(BadInputError, match=r"hold no features|no column"):
        read_labels(str(empty), class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=32633)


def test_chunk_cache_reads_the_same_windows_as_the_store(tiny_features: str) -> None:
    import xarray as xr

    from deep_lulc.stages.chips.reader import ChunkedWindowReader

    item = next(iter(pystac.Catalog.from_file(tiny_features).get_items(recursive=True)))
    array = xr.open_zarr(item.assets["data"].get_absolute_href(), consolidated=True)["features"]
    array = array.chunk({"y": 24, "x": 20})  # small chunks: windows straddle several
    reader = ChunkedWindowReader(array)
    rng = np.random.default_rng(0)
    corners = sorted(
        (int(rng.integers(0, array.sizes["y"] - 30)), int(rng.integers(0, array.sizes["x"] - 30))) for _ in range(40)
    )
    for row, col in corners:
        expected = array.isel(y=slice(row, row + 30), x=slice(col, col + 30)).values
        np.testing.assert_array_equal(reader.window(row, col, 30), expected)
        assert all(key[0] >= (row // 24) for key in reader.cache)  # rows behind the sweep are dropped
    assert reader.decoded < 40 * 4


def test_stratified_assignment_puts_rare_classes_in_both_splits() -> None:
    from deep_lulc.stages.chips.sampling import TRAIN, VALIDATION, block_id, stratified_assignment

    labels = np.full((64, 64), 2, dtype=np.uint8)
    labels[0:16, 0:16] = 5  # the rare class lives in two of sixteen blocks only
    labels[48:64, 48:64] = 5
    windows = [(r, c) for r in range(0, 64, 16) for c in range(0, 64, 16)]
    for seed in range(5):
        assignment = stratified_assignment(
            windows, labels, size=16, block_px=16, val_fraction=0.2, rng=np.random.default_rng(seed)
        )
        assert {assignment[block_id(0, 0)], assignment[block_id(3, 3)]} == {TRAIN, VALIDATION}
        assert sum(split == VALIDATION for split in assignment.values()) == 3


# Defaults that work on any AOI: chip size, count and block size chosen from the labels when left out.


def _split_windows(catalog: str) -> list[Chip]:
    _, items = chip_items(catalog)
    return [
        Chip(w["row"], w["col"], w["size"], item.properties["split"], item.properties["deep-lulc:block"])
        for item in items
        for w in [item.properties["deep-lulc:window"]]
    ]


def _assert_no_leak(chips_: list[Chip]) -> None:
    train = [c for c in chips_ if c.split == "train"]
    validation = [c for c in chips_ if c.split == "validation"]
    for t in train:
        for v in validation:
            assert abs(t.row - v.row) > t.size or abs(t.col - v.col) > t.size, f"train {t} touches validation {v}"


def _square_aoi(aoi_train: Path, side_m: float, path: Path) -> Path:
    """A `side_m` square in the middle of the synthetic training AOI, drawn in EPSG:4326 as users do."""
    from pyproj import Transformer
    from shapely.geometry import mapping, shape

    to_utm = Transformer.from_crs(4326, 32633, always_xy=True)
    to_wgs84 = Transformer.from_crs(32633, 4326, always_xy=True)
    polygon = shape(json.loads(aoi_train.read_text())["features"][0]["geometry"])
    x0, y0, x1, y1 = shapely.transform(polygon, lambda xy: np.column_stack(to_utm.transform(xy[:, 0], xy[:, 1]))).bounds
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, side_m / 2 - 5  # 5 m inside: the cube snaps to whole pixels
    square = shapely.box(cx - half, cy - half, cx + half, cy + half).segmentize(500)
    wgs84 = shapely.transform(square, lambda xy: np.column_stack(to_wgs84.transform(xy[:, 0], xy[:, 1])))
    feature = {"type": "Feature", "properties": {"name": "3 x 3 km"}, "geometry": mapping(wgs84)}
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


@pytest.fixture(scope="module")
def three_km(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Features of a 3 x 3 km AOI (300 x 300 px at 10 m) inside a synthetic scene, and its labels."""
    import datetime as dt

    from deep_lulc.stages.cube import stage as cube
    from deep_lulc.stages.cube.params import CubeParams
    from deep_lulc.stages.features import stage as features
    from deep_lulc.stages.features.params import FeaturesParams
    from deep_lulc.stages.synth import stage as synth
    from deep_lulc.stages.synth.params import SynthParams

    root = tmp_path_factory.mktemp("three-km")
    params = SynthParams(seed=3, size=560, dates=4)
    synth.run(inputs={}, output=str(root / "synth"), params=params)
    aoi = _square_aoi(root / "synth" / "aoi-train.geojson", 3000, root / "aoi-3km.geojson")
    year = {"start": dt.date(params.year, 1, 1), "end": dt.date(params.year, 12, 31)}
    cube_result = cube.run(
        inputs={"stac": str(root / "synth" / "catalog.json"), "aoi": str(aoi)},
        output=str(root / "cube"),
        params=CubeParams(**year),
    )
    assert cube_result.extra["shape"][1:] == [300, 300]
    features_result = features.run(
        inputs={"cube": cube_result.catalog}, output=str(root / "features"), params=FeaturesParams()
    )
    return {"features": features_result.catalog, "labels": str(root / "synth" / "labels.gpkg"), "root": str(root)}


@pytest.fixture(scope="module")
def three_km_defaults(three_km: dict[str, str]) -> StageResult:
    inputs = {"features": three_km["features"], "labels": three_km["labels"]}
    return chips.run(inputs=inputs, output=str(Path(three_km["root"]) / "chips"), params=ChipsParams())


@pytest.mark.slow
def test_a_3_km_aoi_at_defaults_gets_enough_chips_with_every_class_in_both_splits(
    three_km_defaults: StageResult,
) -> None:
    result = three_km_defaults
    print({key: value for key, value in result.extra.items() if key != "class_counts"})
    assert result.extra["train"] >= 32
    assert result.extra["validation"] >= 8
    counts = result.extra["class_counts"]
    assert len(counts["train"]) >= 5  # the synthetic landscape's classes, not a trivial AOI
    assert set(counts["train"]) == set(counts["validation"])
    assert result.extra["warnings"] == []
    assert result.extra["dropped"] <= result.extra["count"] // 10  # the split wastes few windows
    # what was chosen is said in the result, the collection and params.json
    assert result.extra["auto"] == ["count", "size", "block_size"]
    assert result.extra["chip_size"] == 64
    collection, items = chip_items(result.catalog)
    fields = collection.extra_fields
    assert fields["deep-lulc:chip_size"] == 64 == items[0].properties["deep-lulc:window"]["size"]
    assert fields["deep-lulc:block_size"] == result.extra["block_size"]
    assert fields["deep-lulc:count"] == result.extra["count"]
    assert fields["deep-lulc:auto"] == ["count", "size", "block_size"]
    assert fields["deep-lulc:chips"]["train"] == result.extra["train"]
    saved = json.loads((Path(result.catalog).parent / "params.json").read_text())["params"]
    assert (saved["size"], saved["count"], saved["block_size"]) == (
        64,
        result.extra["count"],
        result.extra["block_size"],
    )
    split = json.loads(Path(collection.assets["split"].get_absolute_href() or "").read_text())
    assert (split["chip_size"], split["block_size"]) == (64, result.extra["block_size"])


def test_no_validation_chip_overlaps_or_touches_a_training_chip_at_defaults(
    three_km_defaults: StageResult,
) -> None:
    windows = _split_windows(three_km_defaults.catalog)
    assert len(windows) == three_km_defaults.extra["train"] + three_km_defaults.extra["validation"]
    _assert_no_leak(windows)
    centre = windows[0].size // 2
    block_px = windows[0].size * three_km_defaults.extra["block_size"]
    for chip in windows:  # a chip belongs to the block under its centre
        assert chip.block == f"r{(chip.row + centre) // block_px}c{(chip.col + centre) // block_px}"


def test_count_and_size_grow_with_the_labelled_area_and_stay_bounded() -> None:
    from deep_lulc.stages.chips.auto import MAX_COUNT, MAX_COVERAGE, resolve_layout
    from deep_lulc.stages.chips.windows import integral

    layouts = []
    for side in (120, 300, 600, 1200, 2400, 4800):
        labelled = np.zeros((side, side), dtype=bool)
        labelled[: side - side // 10, :] = True  # a tenth unlabelled: the labelled area counts, not the grid
        layouts.append(resolve_layout(integral(labelled), size=None, count=None, block_size=None))
    print([(layout.size, layout.count, layout.block_size, round(layout.coverage, 2)) for layout in layouts])
    counts = [layout.count for layout in layouts]
    sizes = [layout.size for layout in layouts]
    assert counts == sorted(counts)
    assert counts[1] < counts[2] < counts[3]  # more chips on bigger AOIs...
    assert max(counts) <= MAX_COUNT  # ...bounded
    assert sizes == sorted(sizes)
    assert sizes[1] == 64
    assert sizes[-1] > 64  # bigger chips where the AOI allows
    assert all(layout.coverage <= MAX_COVERAGE for layout in layouts if layout.size > 64)
    assert all(2 <= layout.block_size <= 4 for layout in layouts[1:])
    # given values are kept
    explicit = resolve_layout(integral(np.ones((300, 300), dtype=bool)), size=32, count=10, block_size=5)
    assert (explicit.size, explicit.count, explicit.block_size, explicit.auto) == (32, 10, 5, ())


def test_the_chip_count_at_defaults_grows_from_a_small_aoi_to_a_3_km_one(
    three_km_defaults: StageResult, tiny_features: str, tiny_catalog: Path, tmp_path: Path
) -> None:
    inputs = {"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")}
    small = chips.run(inputs=inputs, output=str(tmp_path / "small"), params=ChipsParams())
    assert small.extra["count"] < three_km_defaults.extra["count"]
    assert small.extra["train"] + small.extra["validation"] < (
        three_km_defaults.extra["train"] + three_km_defaults.extra["validation"]
    )
    assert small.extra["train"] > 0
    assert small.extra["validation"] > 0
    _assert_no_leak(_split_windows(small.catalog))


def test_same_inputs_and_seed_give_the_same_chips(
    tiny_features: str, tiny_catalog: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inputs = {"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")}
    caplog.set_level("INFO", logger="deep_lulc.stages.chips.stage")
    runs = [chips.run(inputs=inputs, output=str(tmp_path / name), params=ChipsParams(seed=4)) for name in "ab"]
    chosen = [line for line in caplog.messages if line.startswith("chips: size")]
    assert len(chosen) == 2
    assert chosen[0] == chosen[1]
    assert "(auto)" in chosen[0]
    windows = [sorted(_split_windows(run.catalog), key=lambda c: (c.row, c.col)) for run in runs]
    assert windows[0] == windows[1]
    assert runs[0].extra == runs[1].extra
    splits = [json.loads((Path(run.catalog).parent / "split.json").read_text()) for run in runs]
    assert splits[0] == splits[1]
    other = chips.run(inputs=inputs, output=str(tmp_path / "c"), params=ChipsParams(seed=5))
    assert sorted(_split_windows(other.catalog), key=lambda c: (c.row, c.col)) != windows[0]


def test_a_class_confined_to_one_block_is_named_in_a_warning(
    three_km: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    item = next(iter(pystac.Catalog.from_file(three_km["features"]).get_items(recursive=True)))
    _, _, x0, _, _, y1 = item.properties["proj:transform"][:6]
    rows, cols = item.properties["proj:shape"]
    x1, y0 = x0 + 10 * cols, y1 - 10 * rows
    middle = (y0 + y1) / 2
    lake = shapely.box(x0 + 20, y1 - 120, x0 + 120, y1 - 20)  # 10 x 10 px in a corner: one block holds it
    polygons = [shapely.box(x0, middle, x1, y1).difference(lake), shapely.box(x0, y0, x1, middle), lake]
    labels = write_polygons(tmp_path / "labels.gpkg", polygons, [2, 3, 5])
    caplog.set_level("INFO", logger="deep_lulc.stages.chips.stage")
    result = chips.run(
        inputs={"features": three_km["features"], "labels": labels}, output=str(tmp_path / "out"), params=ChipsParams()
    )
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "Water" in r.getMessage()]
    assert len(lines) == 1
    assert re.fullmatch(
        r"class 5 Water is in training but absent from validation: its \d+ labelled px lie in one "
        r"block, so it cannot be in both splits",
        lines[0],
    )
    assert result.extra["warnings"] == [lines[0]]
    counts = result.extra["class_counts"]
    assert set(counts["train"]) == {"2", "3", "5"}  # the lake is learnt...
    assert set(counts["validation"]) == {"2", "3"}  # ...and cannot be scored


def test_explicit_options_keep_their_meaning(chip_runs: dict[str, str]) -> None:
    collection, items = chip_items(chip_runs["random"])
    fields = collection.extra_fields
    assert fields["deep-lulc:auto"] == []
    assert (fields["deep-lulc:chip_size"], fields["deep-lulc:block_size"], fields["deep-lulc:count"]) == (16, 1, 60)
    assert len(items) <= 60  # --count windows are drawn; the split adds none to an explicit count
    assert {item.properties["deep-lulc:window"]["size"] for item in items} == {16}
    assert fields["deep-lulc:chips"]["dropped_by_split"] + len(items) == 60


def test_a_split_file_brings_its_grid_when_size_and_block_size_are_left_out(
    chip_runs: dict[str, str], tiny_features: str, tiny_catalog: Path, tmp_path: Path
) -> None:
    collection, _ = chip_items(chip_runs["random"])
    split_file = collection.assets["split"].get_absolute_href() or ""
    inputs = {"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")}
    result = chips.run(inputs=inputs, output=str(tmp_path / "out"), params=ChipsParams(split_file=split_file))
    assert (result.extra["chip_size"], result.extra["block_size"]) == (16, 1)
    assert result.extra["auto"] == ["count"]
    forced = json.loads(Path(split_file).read_text())["blocks"]
    for item in chip_items(result.catalog)[1]:
        assert item.properties["split"] == forced[item.properties["deep-lulc:block"]]


@pytest.mark.parametrize(
    ("option", "value"), [("size", 8), ("count", 0), ("block_size", 0), ("val_fraction", 0.95), ("sampling", "x")]
)
def test_bad_option_values_are_refused_before_any_io(option: str, value: object) -> None:
    from deep_lulc.shared.stage.contract import validate_params

    with pytest.raises(BadInputError, match=rf"invalid parameters: --{option.replace('_', '-')}:"):
        validate_params(ChipsParams, {option: value})


@pytest.mark.parametrize("blank", ["", "auto", None])
def test_a_blank_or_auto_layout_number_is_chosen_for_the_aoi(blank: object) -> None:
    """Argo and the run config pass every parameter: "" or "auto" is the stage's own choice, like leaving it out."""
    from deep_lulc.shared.stage.contract import validate_params

    params = validate_params(ChipsParams, {"size": blank, "count": blank, "block_size": blank, "class_map": ""})
    assert (params.size, params.count, params.block_size, params.class_map) == (None, None, None, None)
    assert validate_params(ChipsParams, {"size": "32", "count": "7", "block_size": "3"}).size == 32
    with pytest.raises(BadInputError, match=r"--size: Input should be a valid integer.* or Input should be 'auto'"):
        validate_params(ChipsParams, {"size": "big"})

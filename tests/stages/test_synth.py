"""The synthetic catalog: valid STAC, right radiometry through GDAL, exact cloud flags, determinism, truth,
and a scene whose single pixels are ambiguous (texture, mixed borders, town mosaics) while parcels are not."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import odc.stac
import pyogrio
import pystac
import pytest
import rasterio
import shapely
from scipy import ndimage, sparse
from shapely.geometry import box, shape

from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.sources import sentinel2
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.landscape import (
    COVER_CLASS,
    Cover,
    Landscape,
    evolve_landscape,
    generate_landscape,
    grid_bounds,
    scene_grid,
)
from deep_lulc.stages.synth.mixing import Fields, mixing_matrix
from deep_lulc.stages.synth.params import SynthParams
from deep_lulc.stages.synth.phenology import BARE, COMPONENTS, Material, ParcelTraits, cover_reflectance
from deep_lulc.stages.synth.scenes import Acquisition, Scene, SceneContext, Sky, plan_acquisitions, render_scene
from deep_lulc.stages.synth.stage import reflectance_to_dn
from deep_lulc.stages.synth.truth import PREDICT_WINDOW, TRAIN_WINDOW, aoi_bounds

from ..conftest import TINY, validate_tree


def imagery(catalog_dir: Path) -> list[pystac.Item]:
    catalog = pystac.Catalog.from_file(str(catalog_dir / "catalog.json"))
    collection = catalog.get_child("sentinel-2-l2a")
    assert collection is not None
    return sorted(collection.get_items(), key=lambda item: item.datetime or 0)


def scenes_of(params: SynthParams, year: int) -> list[Scene]:
    landscape = generate_landscape(scene_grid(params.size), seed=params.seed)
    context = SceneContext.build(landscape, seed=params.seed, year=year)
    return [render_scene(context, a) for a in plan_acquisitions(seed=params.seed, year=year, count=params.dates)]


def test_catalog_validates_offline(tiny_catalog: Path) -> None:
    # root + 2 collections + 2 periods x 6 acquisitions + 2 label items
    assert validate_tree(tiny_catalog / "catalog.json") == 1 + 2 + 12 + 2
    for item in imagery(tiny_catalog):
        assert item.properties["processing:software"]["deep-lulc"]
        assert set(item.assets) == {"blue", "green", "red", "nir", "swir16", "swir22", "scl"}
        for asset in item.assets.values():
            assert (Path(item.get_self_href() or "").parent / asset.href).is_file()
    truth = pystac.Item.from_file(str(tiny_catalog / "labels" / "labels-2023" / "labels-2023.json"))
    classes = truth.assets["labels"].extra_fields["classification:classes"]
    assert [c["name"] for c in classes] == [c.name for c in SLOVENIA.classes]


def test_odc_stac_reads_dn_and_radiometry(tiny_catalog: Path) -> None:
    items = [i for i in imagery(tiny_catalog) if i.datetime and i.datetime.year == TINY.year]
    scenes = scenes_of(TINY, TINY.year)
    cube = odc.stac.load(items, bands=["red", "nir", "swir16", "scl"], crs="EPSG:32633", resolution=10, chunks={})
    cube = cube.compute()
    assert cube.sizes["x"] == TINY.size
    assert cube.sizes["y"] == TINY.size
    assert cube.sizes["time"] == len(scenes)
    for index, (item, scene) in enumerate(zip(items, scenes, strict=True)):
        red_dn = cube["red"].isel(time=index).values
        assert red_dn.dtype == np.uint16
        np.testing.assert_array_equal(red_dn, reflectance_to_dn(scene.reflectance_10m[2]))
        radiometry = sentinel2.scale_offset(item, "B04")
        assert (radiometry.scale, radiometry.offset, radiometry.source) == (1e-4, -0.1, "raster:bands")
        data = red_dn > 0
        reflectance = red_dn[data] * radiometry.scale + radiometry.offset
        np.testing.assert_allclose(reflectance, scene.reflectance_10m[2][data], atol=0.51e-4)
        # 20 m bands come back on the 10 m grid: nearest upsampling repeats each 20 m pixel 2x2.
        swir = cube["swir16"].isel(time=index).values[::2, ::2]
        np.testing.assert_array_equal(swir, reflectance_to_dn(scene.reflectance_20m[0]))
        np.testing.assert_array_equal(cube["scl"].isel(time=index).values[::2, ::2], scene.scl)


def test_scl_flags_exactly_the_placed_clouds(tiny_catalog: Path) -> None:
    items = imagery(tiny_catalog)
    scenes = scenes_of(TINY, TINY.year) + scenes_of(TINY, TINY.year + 1)
    clouded_dates = 0
    for item, scene in zip(items, scenes, strict=True):
        with rasterio.open(Path(item.get_self_href() or "").parent / item.assets["scl"].href) as source:
            scl = source.read(1)
        np.testing.assert_array_equal(np.isin(scl, (8, 9, 10)), scene.cloud)
        np.testing.assert_array_equal(scl == 3, scene.shadow)
        np.testing.assert_array_equal(scl == 0, scene.nodata)
        if scene.cloud.mean() > 0.02:
            clouded_dates += 1
            with rasterio.open(Path(item.get_self_href() or "").parent / item.assets["blue"].href) as source:
                blue = source.read(1)[::2, ::2] * 1e-4 - 0.1
            opaque = scl == 9
            clear = np.isin(scl, (4, 5, 6))
            if opaque.any() and clear.any():
                assert blue[opaque].mean() > 0.2 > 0.1 > blue[clear].mean()
        assert item.properties["eo:cloud_cover"] == pytest.approx(scene.cloud_cover_percent, abs=1e-3)
    assert clouded_dates >= 2


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    params = SynthParams(seed=11, size=128, dates=4)

    def digest(folder: Path) -> dict[str, str]:
        return {
            str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    synth.run(inputs={}, output=str(tmp_path / "a"), params=params)
    synth.run(inputs={}, output=str(tmp_path / "b"), params=params)
    synth.run(inputs={}, output=str(tmp_path / "c"), params=params.model_copy(update={"seed": 12}))
    first, second, other = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert len(first) > 50
    assert first == second
    differing = [name for name in first if first[name] != other.get(name)]
    assert any(name.endswith(".tif") for name in differing)
    assert "labels.gpkg" in differing


def test_landscape_is_imbalanced_like_the_seed() -> None:
    landscape = generate_landscape(scene_grid(512), seed=0)
    fractions = landscape.class_fractions()
    assert max(fractions, key=lambda value: fractions[value]) == 2  # forest dominant
    assert 0.25 < fractions[2] < 0.5
    for rare in (5, 6):  # water and wetland: a few percent
        assert 0.005 < fractions[rare] < 0.06
    assert set(fractions) == {1, 2, 3, 4, 5, 6, 8, 9}
    classes = landscape.class_raster()
    grid = landscape.grid
    for window in ((0.02, 0.02, 0.56, 0.98), (0.62, 0.02, 0.98, 0.98)):
        minx, _miny, maxx, _maxy = aoi_bounds(grid, window)
        col0, col1 = round((minx - grid.affine.c) / 10), round((maxx - grid.affine.c) / 10)
        present = set(np.unique(classes[:, col0:col1]).tolist())
        assert present == {1, 2, 3, 4, 5, 6, 8, 9}, "every class must appear in both AOIs"


def test_crop_and_grass_differ_in_timing_not_at_every_date() -> None:
    traits = ParcelTraits.draw(1, np.random.default_rng(0))
    index = np.array([0])

    def ndvi(cover: Cover, doy: float) -> float:
        _blue, _green, red, nir, *_ = cover_reflectance(cover, doy, index, traits)[0]
        return float((nir - red) / (nir + red))

    days = np.arange(1, 366, 5)
    winter = np.array([ndvi(Cover.WINTER_CROP, float(d)) for d in days])
    summer = np.array([ndvi(Cover.SUMMER_CROP, float(d)) for d in days])
    grass = np.array([ndvi(Cover.GRASS, float(d)) for d in days])
    assert days[winter.argmax()] < 180 < days[summer.argmax()]  # wheat peaks before maize
    assert summer[days < 120].max() < 0.3
    assert grass[days < 120].min() > 0.3
    assert np.abs(winter - grass).min() < 0.05  # ...but at some single date crops and meadows look alike
    assert COVER_CLASS[Cover.WINTER_CROP] == COVER_CLASS[Cover.SUMMER_CROP] == 1


def test_labels_aois_and_second_period(tiny_catalog: Path) -> None:
    manifest = json.loads((tiny_catalog / "synth.json").read_text())
    info = pyogrio.read_info(tiny_catalog / "labels.gpkg")
    assert info["crs"] == "EPSG:32633"
    assert "lulc" in list(info["fields"])
    _, _, geometry, fields = pyogrio.raw.read(tiny_catalog / "labels.gpkg")
    polygons = shapely.from_wkb(geometry)
    vertices = np.concatenate([np.asarray(p.exterior.coords) for p in polygons])
    on_grid = np.isclose(np.mod(vertices, 10.0), 0.0, atol=1e-6) | np.isclose(np.mod(vertices, 10.0), 10.0)
    assert on_grid.all(axis=1).mean() < 0.2, "label polygons must not follow the pixel grid"
    assert shapely.union_all(polygons).area == pytest.approx((TINY.size * 10.0) ** 2, rel=1e-6)

    _, _, _, fields_next = pyogrio.raw.read(tiny_catalog / f"labels-{TINY.year + 1}.gpkg")
    lulc_before, lulc_after = fields[1], fields_next[1]
    changed = {
        c["parcel_id"] for c in manifest["changes"] if COVER_CLASS[Cover(c["from"])] != COVER_CLASS[Cover(c["to"])]
    }
    assert changed, "the second period must hold land-cover changes"
    assert set(np.flatnonzero(lulc_before != lulc_after).tolist()) == changed
    assert set(lulc_after[lulc_before != lulc_after].tolist()) == {8}  # growth of artificial surface

    footprint = box(*grid_bounds(scene_grid(TINY.size)))
    aois = []
    for name in ("aoi-train.geojson", "aoi-predict.geojson"):
        document = json.loads((tiny_catalog / name).read_text())
        polygon = shape(document["features"][0]["geometry"])
        lon, lat = polygon.centroid.x, polygon.centroid.y
        assert 13 < lon < 17, "AOIs are EPSG:4326 lon/lat in Slovenia"
        assert 45 < lat < 47, "AOIs are EPSG:4326 lon/lat in Slovenia"
        aois.append(polygon)
    assert not aois[0].intersects(aois[1])
    item = imagery(tiny_catalog)[0]
    assert all(shape(item.geometry).contains(aoi) for aoi in aois)
    assert footprint.area > 0


def test_planetary_computer_style(tmp_path: Path) -> None:
    synth.run(
        inputs={}, output=str(tmp_path), params=SynthParams(seed=1, size=128, dates=4, asset_style="planetary-computer")
    )
    item = imagery(tmp_path)[0]
    assert set(item.assets) == {"B02", "B03", "B04", "B08", "B11", "B12", "SCL"}
    assert all("raster:bands" not in asset.extra_fields for asset in item.assets.values())
    assert str(item.properties["platform"]).startswith("Sentinel-2")
    radiometry = sentinel2.scale_offset(item, "B04")
    assert (radiometry.offset, radiometry.source) == (-0.1, "baseline")
    assert sentinel2.processing_baseline(item) == (5, 10)
    assert validate_tree(tmp_path / "catalog.json") > 0


def shares(matrix: sparse.csr_matrix, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """(pixels, n_groups) fraction of each pixel's signal from each group of the matrix's columns."""
    coo = matrix.tocoo()
    out = np.zeros((matrix.shape[0], n_groups))
    np.add.at(out, (coo.row, groups[coo.col]), coo.data)
    return np.asarray(out / out.sum(axis=1, keepdims=True))


def by_parcel(landscape: Landscape, matrix: sparse.csr_matrix) -> np.ndarray:
    n = len(landscape.parcels)
    size = landscape.grid.width
    return shares(matrix, np.arange(n * len(COMPONENTS)) // len(COMPONENTS), n).reshape(size, size, n)


def by_component(landscape: Landscape, matrix: sparse.csr_matrix) -> np.ndarray:
    width = len(COMPONENTS)
    size = landscape.grid.width
    groups = np.arange(len(landscape.parcels) * width) % width
    return shares(matrix, groups, width).reshape(size, size, width)


def near_border(index: np.ndarray, width: int) -> np.ndarray:
    """Pixels with another parcel within the `width` x `width` window around them."""
    return np.asarray(ndimage.maximum_filter(index, width) != ndimage.minimum_filter(index, width))


def test_border_pixels_mix_their_parcels_and_are_labelled_by_their_centre() -> None:
    landscape = generate_landscape(scene_grid(TINY.size), seed=TINY.seed)
    parcels = by_parcel(landscape, mixing_matrix(landscape, Fields.draw(landscape.grid, seed=TINY.seed)))
    index = landscape.parcel_index()  # the label's parcel: the one under the pixel centre
    mixed = (parcels > 0.05).sum(axis=2) >= 2
    assert 0.03 < mixed.mean() < 0.2
    assert not mixed[~near_border(index, 5)].any(), "only pixels at a border mix parcels"
    across = np.zeros_like(mixed)  # pixels whose right or lower neighbour lies in another parcel
    across[:, :-1] |= index[:, :-1] != index[:, 1:]
    across[:-1, :] |= index[:-1, :] != index[1:, :]
    assert mixed[across].mean() > 0.3, "a border crossing between two pixel centres mixes one of them"
    # By area, a pixel is mostly the parcel under its centre; a thin sliver can tip the balance.
    assert (parcels.argmax(axis=2) == index).mean() > 0.99


def test_town_pixels_look_like_bare_ground_or_meadow_but_towns_do_not() -> None:
    landscape = generate_landscape(scene_grid(256), seed=0)
    context = SceneContext.build(landscape, seed=0, year=2023)
    components = by_component(landscape, context.mixing)
    index = landscape.parcel_index()
    covers = np.array([p.cover.value for p in landscape.parcels])[index]
    inside = ~near_border(index, 5)
    town, bare, meadow = ((covers == c.value) & inside for c in (Cover.URBAN, Cover.BARE, Cover.GRASS))
    assert town.sum() > 500
    assert bare.sum() > 100
    assert meadow.sum() > 500
    roof = components[..., [COMPONENTS.index(Material.ROOF_TILE), COMPONENTS.index(Material.ROOF_GREY)]].sum(-1)
    lawn = components[..., COMPONENTS.index(Cover.GRASS)]
    assert (roof[town] > 0.8).mean() > 0.15, "some town pixels are all roof"
    assert (lawn[town] > 0.8).mean() > 0.08, "some town pixels are all lawn"
    assert 0.3 < roof[town].mean() < 0.6, "a town is a mosaic"
    assert 0.15 < lawn[town].mean() < 0.45, "a town is a mosaic"

    clear = [a for a in plan_acquisitions(seed=0, year=2023, count=24) if a.sky == Sky.CLEAR]
    summer = next(a for a in clear if 160 < a.datetime.timetuple().tm_yday < 240)
    reflectance = render_scene(context, summer).reflectance_10m  # B02 B03 B04 B08
    ndvi = (reflectance[3] - reflectance[2]) / (reflectance[3] + reflectance[2])
    assert ndvi[town].std() > 1.5 * ndvi[meadow].std(), "town pixels are far more varied than meadow pixels"
    # A roof pixel is spectrally bare ground, a lawn pixel is meadow...
    roofed = town & (components[..., COMPONENTS.index(Material.ROOF_TILE)] > 0.95)
    np.testing.assert_allclose(reflectance[:, roofed].mean(axis=1), BARE[:4], rtol=0.12)
    lawned = town & (lawn > 0.95)
    assert abs(float(ndvi[lawned].mean()) - float(ndvi[meadow].mean())) < 0.1
    # ...but the town as a whole is neither.
    assert ndvi[bare].mean() + 0.1 < ndvi[town].mean() < ndvi[meadow].mean() - 0.05


def test_texture_persists_through_the_year_and_averages_out_over_the_parcel() -> None:
    landscape = generate_landscape(scene_grid(TINY.size), seed=TINY.seed)
    context = SceneContext.build(landscape, seed=TINY.seed, year=TINY.year)
    clear = [a for a in plan_acquisitions(seed=TINY.seed, year=TINY.year, count=24) if a.sky == Sky.CLEAR]
    spring, autumn = (
        next(a for a in clear if lo < a.datetime.timetuple().tm_yday < hi) for lo, hi in ((90, 150), (240, 300))
    )
    index = landscape.parcel_index()
    covers = np.array([p.cover.value for p in landscape.parcels])[index]
    inside = ~near_border(index, 5)

    def residual(acquisition: Acquisition) -> np.ndarray:
        """NIR minus the mean of the pixel's parcel (interior pixels of fields, meadows and forest only)."""
        nir = render_scene(context, acquisition).reflectance_10m[3].astype(float)
        keep = inside & np.isin(
            covers,
            [c.value for c in (Cover.WINTER_CROP, Cover.SUMMER_CROP, Cover.GRASS, Cover.DECIDUOUS, Cover.EVERGREEN)],
        )
        labels = np.where(keep, index, len(landscape.parcels)).ravel()
        sums = np.bincount(labels, weights=nir.ravel(), minlength=len(landscape.parcels) + 1)
        means = sums / np.maximum(np.bincount(labels, minlength=len(landscape.parcels) + 1), 1)
        return np.where(keep, nir - means[index], np.nan)

    first, second = residual(spring), residual(autumn)
    both = ~np.isnan(first) & ~np.isnan(second) & ~np.isnan(first + second)
    assert both.sum() > 2000
    assert np.nanstd(first) > 5 * 0.003, "texture is much stronger than the sensor noise"
    assert np.corrcoef(first[both], second[both])[0, 1] > 0.5, "a pixel keeps its texture through the year"
    # Averaging over the parcel removes it: a 5 x 5 box already removes most of its variance.
    filled = np.where(both, first, 0.0)
    for width, most in ((5, 0.6), (9, 0.45)):
        box_mean = ndimage.uniform_filter(filled, width)
        core = both & (ndimage.uniform_filter(both.astype(float), width) > 0.999)
        assert box_mean[core].std() < most * first[core].std()


@pytest.mark.parametrize("seed", [0, 1])
def test_rare_classes_cover_about_two_percent_of_each_aoi_in_both_years(seed: int) -> None:
    first = generate_landscape(scene_grid(512), seed=seed)
    second, _ = evolve_landscape(first, seed=seed)
    for landscape in (first, second):
        classes = landscape.class_raster()
        for window in (TRAIN_WINDOW, PREDICT_WINDOW):
            left, top, right, bottom = (round(f * 512) for f in window)
            inside = classes[top:bottom, left:right]
            for rare in (5, 6, 9):  # water, wetland, bare land
                assert 0.01 < (inside == rare).mean() < 0.045, (rare, window)
    # Bare land is many small pits, not one or two fields, so its look varies within each AOI.
    assert sum(p.lulc == 9 for p in first.parcels) >= 8


def test_mixing_is_deterministic_per_seed() -> None:
    landscape = generate_landscape(scene_grid(TINY.size), seed=TINY.seed)
    one = mixing_matrix(landscape, Fields.draw(landscape.grid, seed=TINY.seed))
    two = mixing_matrix(landscape, Fields.draw(landscape.grid, seed=TINY.seed))
    other = mixing_matrix(landscape, Fields.draw(landscape.grid, seed=TINY.seed + 1))
    assert (one != two).nnz == 0
    assert abs(one - other).max() > 0.1

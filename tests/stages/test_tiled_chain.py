"""Country scale: a map built tile by tile from the imagery on (plan-tiles --aoi, then per tile cube ->
features -> predict, then merge) is the map one process builds, pixel for pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.products.tiles import read_tiles_file
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.merge import stage as merge
from deep_lulc.stages.merge.params import MergeParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict import tiles as plan
from deep_lulc.stages.predict.params import PlanTilesParams, PredictParams
from deep_lulc.stages.sample import stage as sample
from deep_lulc.stages.sample.params import SampleParams

from ..conftest import CUBE_PERIOD, validate_tree

WINDOW, OVERLAP, TILE = 32, 8, 40


def item_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


def read_asset(catalog: str, key: str) -> np.ndarray:
    with rasterio.open(item_of(catalog).assets[key].get_absolute_href() or "") as dataset:
        return np.asarray(dataset.read())


def features_of(catalog: str) -> xr.Dataset:
    dataset: xr.Dataset = xr.open_zarr(item_of(catalog).assets["data"].get_absolute_href() or "", consolidated=False)
    return dataset


def _map(inputs: dict[str, str], folder: Path, model: str, tile: tuple[str, str] | None = None) -> tuple[str, str]:
    """cube -> features -> predict for the whole AOI, or for one tile of a plan; (features, prediction) catalogs."""
    selection = {"tile": tile[0], "tiles": tile[1]} if tile else {}
    cubed = cube.run(inputs=inputs, output=str(folder / "cube"), params=CubeParams(**CUBE_PERIOD, **selection))
    featured = features.run(inputs={"cube": cubed.catalog}, output=str(folder / "features"), params=FeaturesParams())
    predicted = predict.run(
        inputs={"model": model, "features": featured.catalog},
        output=str(folder / "prediction"),
        params=PredictParams(device="cpu", probabilities=True, **selection)
        if tile
        else PredictParams(device="cpu", probabilities=True, tile_size=WINDOW, overlap=OVERLAP),
    )
    return featured.catalog, predicted.catalog


@pytest.mark.slow
def test_tile_by_tile_from_the_cube_on_merges_into_the_single_process_map(
    tiny_catalog: Path, tiny_model: str, tmp_path: Path
) -> None:
    inputs = {"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-predict.geojson")}
    whole_features, single = _map(inputs, tmp_path / "single", tiny_model)

    tiles_file = tmp_path / "tiles.json"
    planned = plan.run(
        inputs={"aoi": inputs["aoi"]},
        output=str(tiles_file),
        params=PlanTilesParams(tile_size=TILE, window_size=WINDOW, overlap=OVERLAP),
    )
    tiles = read_tiles_file(str(tiles_file))
    assert len(tiles) == planned.extra["count"] >= 4
    whole = item_of(single)
    assert planned.extra["grid"] == whole.properties["proj:shape"], "the plan's grid is the one cube builds"

    reference = features_of(whole_features)
    catalogs = []
    for tile in reversed(tiles):  # order must not matter
        tile_features, predicted = _map(inputs, tmp_path / tile.id, tiny_model, (tile.id, str(tiles_file)))
        assert validate_tree(predicted) == 3
        catalogs.append(predicted)
        # each tile's features are the whole AOI's over its read region: nothing depends on the AOI's extent
        own = features_of(tile_features)
        rows, cols = tile.read_window.slices
        np.testing.assert_array_equal(own["features"].values, reference["features"].values[:, :, rows, cols])
        np.testing.assert_array_equal(own["valid_count"].values, reference["valid_count"].values[rows, cols])

    merged = merge.run(
        inputs={f"t{i}": c for i, c in enumerate(catalogs)}, output=str(tmp_path / "merged"), params=MergeParams()
    )
    np.testing.assert_array_equal(read_asset(merged.catalog, "classes"), read_asset(single, "classes"))
    np.testing.assert_array_equal(read_asset(merged.catalog, "probabilities"), read_asset(single, "probabilities"))
    merged_item = item_of(merged.catalog)
    assert merged_item.id == whole.id
    assert merged_item.properties["proj:transform"] == whole.properties["proj:transform"]
    # the merged, fanned-out map is sampled like one process's map: the same points, the same classes
    drawn = [
        sample.run(
            inputs={"map": catalog}, output=str(tmp_path / name), params=SampleParams(size=40, min_per_stratum=5)
        )
        for catalog, name in ((merged.catalog, "sample-merged"), (single, "sample-single"))
    ]
    assert Path(drawn[0].extra["sample"]).read_bytes() == Path(drawn[1].extra["sample"]).read_bytes()
    assert drawn[0].extra["points"] >= 40


def test_an_aoi_plan_records_the_grid_cube_builds_and_reads_back(tiny_catalog: Path, tmp_path: Path) -> None:
    tiles_file = tmp_path / "tiles.json"
    plan.run(
        inputs={"aoi": str(tiny_catalog / "aoi-predict.geojson")},
        output=str(tiles_file),
        params=PlanTilesParams(tile_size=TILE, window_size=WINDOW, overlap=OVERLAP),
    )
    tiles = read_tiles_file(str(tiles_file))
    whole = tiles[0].grid()
    assert whole is not None
    assert {t.grid() for t in tiles} == {whole}
    for tile in tiles:  # the read grids are windows of the whole grid, exactly
        part = tile.read_grid()
        assert part.shape == (tile.read_height, tile.read_width)
        assert part.affine.c == whole.affine.c + tile.read_col * whole.affine.a
        assert part.affine.f == whole.affine.f + tile.read_row * whole.affine.e
    document = json.loads(tiles_file.read_text())
    assert {"epsg", "transform"} <= set(document[0])


def test_plan_tiles_wants_exactly_one_of_aoi_and_features(tiny_catalog: Path, tmp_path: Path) -> None:
    params = PlanTilesParams(tile_size=TILE, window_size=WINDOW, overlap=OVERLAP)
    with pytest.raises(BadInputError, match=r"exactly one of --aoi and --features.*fix: pass --aoi AOI"):
        plan.run(inputs={}, output=str(tmp_path / "t.json"), params=params)
    with pytest.raises(BadInputError, match=r"\(got aoi and features\)"):
        plan.run(inputs={"aoi": "x", "features": "y"}, output=str(tmp_path / "t.json"), params=params)


def test_a_tile_planned_for_another_aoi_is_refused_before_loading(tiny_catalog: Path, tmp_path: Path) -> None:
    tiles_file = tmp_path / "tiles.json"
    plan.run(
        inputs={"aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(tiles_file),
        params=PlanTilesParams(tile_size=TILE, window_size=WINDOW, overlap=OVERLAP),
    )
    first = read_tiles_file(str(tiles_file))[0].id
    inputs = {"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-predict.geojson")}
    with pytest.raises(BadInputError, match=r"was planned on .* but this AOI's imagery gives .*fix: plan the tiles"):
        cube.run(
            inputs=inputs,
            output=str(tmp_path / "cube"),
            params=CubeParams(**CUBE_PERIOD, tile=first, tiles=str(tiles_file)),
        )
    assert not (tmp_path / "cube").exists()

"""`deep-lulc predict`, `plan-tiles` and `merge`: seamless blending, tiles that mosaic into the single-process
map, valid COGs and items, and clear refusals when features and model do not fit."""

from __future__ import annotations

import itertools
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import torch
import xarray as xr
from rio_cogeo.cogeo import cog_validate
from torch import nn

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.geo.windows import PixelWindow, Span, taper, window_grid, window_starts
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.models.inference import FeatureSource, InferenceSetup, predict_region
from deep_lulc.shared.models.temporal_unet import TemporalPixelNet
from deep_lulc.shared.products import zarr_store
from deep_lulc.shared.products.features import open_store
from deep_lulc.stages.merge import stage as merge
from deep_lulc.stages.merge.params import MergeParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict import tiles as plan
from deep_lulc.stages.predict.params import PlanTilesParams, PredictParams

from ..conftest import BIN, cli_env, validate_tree
from ..resealing import reseal, reseal_links

N_OUT = 11


def store_of(catalog: str) -> str:
    item = next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))
    return item.assets["data"].get_absolute_href() or ""


def item_of(catalog: str) -> pystac.Item:
    return next(iter(pystac.Catalog.from_file(catalog).get_items(recursive=True)))


def read_asset(catalog: str, key: str) -> np.ndarray:
    with rasterio.open(item_of(catalog).assets[key].get_absolute_href() or "") as dataset:
        return np.asarray(dataset.read())


class ConstantModel(nn.Module):
    """The same logits everywhere, whatever the input."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None, :, None, None].expand(x.shape[0], -1, x.shape[2], x.shape[3]).clone()


def pixelwise_model(n_in: int, seed: int) -> nn.Module:
    """Output depends on each pixel's features, hence on position, but not on the window around it."""
    torch.manual_seed(seed)
    return nn.Conv2d(n_in, N_OUT, kernel_size=1)


def blended(model: nn.Module, source: FeatureSource, *, window: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (n_out, y, x) of the whole grid and how many times each pixel was emitted."""
    n_in = int(np.prod(source.features.shape[:2]))
    setup = InferenceSetup(
        window=window,
        overlap=overlap,
        batch_size=3,
        device=torch.device("cpu"),
        input_mode="stack",
        mean=np.zeros(n_in, np.float32),
        std=np.ones(n_in, np.float32),
        n_out=N_OUT,
        nodata=0,
    )
    probabilities = np.full((N_OUT, source.height, source.width), np.nan, dtype=np.float32)
    emitted = np.zeros((source.height, source.width), dtype=np.int64)

    def emit(rows: Span, cols: Span, values: np.ndarray) -> None:
        probabilities[:, rows.start : rows.stop, cols.start : cols.stop] = values
        emitted[rows.start : rows.stop, cols.start : cols.stop] += 1

    core = PixelWindow(Span(0, source.height), Span(0, source.width))
    windows = window_grid(source.height, source.width, window, overlap)
    predict_region(model, source, core=core, windows=windows, setup=setup, emit=emit)
    return probabilities, emitted


@pytest.mark.parametrize(("length", "window", "overlap"), [(100, 32, 8), (64, 64, 8), (20, 32, 8), (257, 48, 0)])
def test_windows_cover_every_pixel_and_end_flush(length: int, window: int, overlap: int) -> None:
    starts = window_starts(length, window, overlap)
    covered = np.zeros(length, dtype=int)
    for start in starts:
        covered[start : start + window] += 1
    assert covered.min() >= 1
    assert starts[0] == 0
    assert min(starts[-1] + window, length) == length
    assert all(b - a <= window - overlap for a, b in itertools.pairwise(starts))


def test_taper_is_positive_symmetric_and_flat_in_the_middle() -> None:
    weights = taper(64, 16)
    assert weights.min() > 0
    np.testing.assert_allclose(weights, weights[::-1])
    assert (weights[16:48] == 1).all()
    assert (np.diff(weights[:16]) > 0).all()


def test_constant_model_gives_a_constant_map(tiny_features: str) -> None:
    source = FeatureSource(open_store(store_of(tiny_features), lazy=False))
    logits = torch.linspace(-2, 3, N_OUT)
    probabilities, emitted = blended(ConstantModel(logits), source, window=32, overlap=8)
    assert (emitted == 1).all(), "every pixel is emitted exactly once"
    expected = torch.softmax(torch.cat([torch.tensor([-torch.inf]), logits[1:]]), dim=0).numpy()
    np.testing.assert_allclose(probabilities, np.broadcast_to(expected[:, None, None], probabilities.shape), atol=1e-6)


def test_position_dependent_model_gives_the_same_map_for_any_window(tiny_features: str) -> None:
    source = FeatureSource(open_store(store_of(tiny_features), lazy=False))
    n_in = int(np.prod(source.features.shape[:2]))
    model = pixelwise_model(n_in, seed=1)
    reference, _ = blended(model, source, window=4096, overlap=0)  # one window: nothing to blend
    classes = reference.argmax(axis=0)
    assert len(np.unique(classes)) > 1, "the test model must vary over the grid"
    for window, overlap in [(32, 8), (48, 16), (64, 4)]:
        probabilities, emitted = blended(model, source, window=window, overlap=overlap)
        assert (emitted == 1).all()
        np.testing.assert_allclose(probabilities, reference, atol=1e-5)
        assert (probabilities.argmax(axis=0) == classes).mean() > 0.999


def test_the_default_network_gives_nearly_the_same_map_for_any_window(tiny_features: str) -> None:
    """temporal-pixel looks one pixel beyond each pixel (its 3 x 3 average): a window's edge changes only the
    few pixels the blending does not already give to a neighbouring window's interior."""
    source = FeatureSource(open_store(store_of(tiny_features), lazy=False))
    n_features, n_dates = int(source.features.shape[1]), int(source.features.shape[0])
    torch.manual_seed(4)
    model = TemporalPixelNet(n_features, n_dates, N_OUT).eval()
    for module in model.modules():  # batch-norm statistics away from 0/1, as after training
        if isinstance(module, nn.BatchNorm2d):
            assert module.running_mean is not None
            assert module.running_var is not None
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    head = model.head[1]
    assert isinstance(head, nn.Conv2d)
    with torch.no_grad():  # a confident head, so classes change over the grid
        head.weight.mul_(50)
    reference, _ = blended(model, source, window=4096, overlap=0)
    classes = reference.argmax(axis=0)
    assert len(np.unique(classes)) > 1, "the test model must vary over the grid"
    for window, overlap in [(32, 8), (64, 4)]:
        probabilities, _ = blended(model, source, window=window, overlap=overlap)
        assert np.abs(probabilities - reference).max() < 0.2
        assert (probabilities.argmax(axis=0) == classes).mean() > 0.99


@pytest.fixture(scope="module")
def single(tiny_model: str, tiny_features: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("prediction")
    params = PredictParams(tile_size=32, overlap=8, batch_size=4, device="cpu", probabilities=True)
    return predict.run(inputs={"model": tiny_model, "features": tiny_features}, output=str(out), params=params).catalog


def test_prediction_is_a_valid_cog_item(single: str, tiny_model: str, tiny_features: str) -> None:
    assert validate_tree(single) == 3
    item = item_of(single)
    href = item.assets["classes"].get_absolute_href() or ""
    valid, errors, _ = cog_validate(href, quiet=True)
    assert valid, errors
    with rasterio.open(href) as dataset:
        assert dataset.dtypes[0] == "uint8"
        assert dataset.nodata == 0
        assert dataset.colormap(1)[2][:3] == (5, 73, 7)  # Forest's colour
        classes = dataset.read(1)
        assert (dataset.height, dataset.width) == tuple(item.properties["proj:shape"])
    names = {c["name"] for c in item.assets["classes"].extra_fields["classification:classes"]}
    assert {"Forest", "Water", "NoData"} <= names
    derived = {Path(link.get_absolute_href() or "").name for link in item.links if link.rel == "derived_from"}
    assert derived == {f"{item_of(tiny_features).id}.json", f"{item_of(tiny_model).id}.json"}
    fractions = item.properties["deep-lulc:class_fractions"]
    assert sum(fractions.values()) == pytest.approx(1.0, abs=1e-4)
    assert set(np.unique(classes).tolist()) - {0} == {SLOVENIA.by_name(name).value for name in fractions}
    percent = read_asset(single, "probabilities").astype(int)
    observed = classes != 0
    assert np.abs(percent[:, observed].sum(axis=0) - 100).max() <= 6  # per-class rounding
    preview = Path(item.assets["thumbnail"].get_absolute_href() or "")
    assert preview.read_bytes()[:4] == b"\x89PNG"
    params = json.loads((Path(single).parent / "params.json").read_text())
    assert params["params"]["tile_size"] == 32


@pytest.mark.slow
def test_tiles_merge_into_the_single_process_map(
    single: str, tiny_model: str, tiny_features: str, tmp_path: Path
) -> None:
    tiles_file = tmp_path / "tiles.json"
    planned = plan.run(
        inputs={"features": tiny_features},
        output=str(tiles_file),
        params=PlanTilesParams(tile_size=40, window_size=32, overlap=8),
    )
    tiles = json.loads(tiles_file.read_text())
    assert len(tiles) == planned.extra["count"] >= 4
    catalogs = []
    for tile in reversed(tiles):  # order must not matter
        params = PredictParams(batch_size=3, device="cpu", probabilities=True, tile=tile["id"], tiles=str(tiles_file))
        result = predict.run(
            inputs={"model": tiny_model, "features": tiny_features}, output=str(tmp_path / tile["id"]), params=params
        )
        assert validate_tree(result.catalog) == 3
        catalogs.append(result.catalog)
    merged = merge.run(
        inputs={f"t{i}": c for i, c in enumerate(catalogs)}, output=str(tmp_path / "merged"), params=MergeParams()
    )
    assert validate_tree(merged.catalog) == 3
    np.testing.assert_array_equal(read_asset(merged.catalog, "classes"), read_asset(single, "classes"))
    np.testing.assert_array_equal(read_asset(merged.catalog, "probabilities"), read_asset(single, "probabilities"))
    merged_item, single_item = item_of(merged.catalog), item_of(single)
    assert merged_item.id == single_item.id
    assert merged_item.properties["proj:transform"] == single_item.properties["proj:transform"]
    assert cog_validate(merged_item.assets["classes"].get_absolute_href() or "", quiet=True)[0]

    with pytest.raises(BadInputError, match=r"got \d+ of the plan's \d+ tiles"):
        merge.run(inputs={"t": catalogs[0]}, output=str(tmp_path / "partial"), params=MergeParams())
    with pytest.raises(BadInputError, match="more than once"):
        merge.run(inputs={"a": catalogs[0], "b": catalogs[0]}, output=str(tmp_path / "twice"), params=MergeParams())
    with pytest.raises(BadInputError, match="not a tile prediction"):
        merge.run(inputs={"a": single}, output=str(tmp_path / "whole"), params=MergeParams())
    with pytest.raises(BadInputError, match="not in"):
        predict.run(
            inputs={"model": tiny_model, "features": tiny_features},
            output=str(tmp_path / "x"),
            params=PredictParams(tile="r099-c099", tiles=str(tiles_file)),
        )
    with pytest.raises(BadInputError, match="differ from the plan"):
        predict.run(
            inputs={"model": tiny_model, "features": tiny_features},
            output=str(tmp_path / "y"),
            params=PredictParams(tile_size=64, tile=tiles[0]["id"], tiles=str(tiles_file)),
        )
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()


def _reseal(catalog: Path, store: Path) -> None:
    """Record an edited store's manifest again, and its new size and checksum in the item: a deliberate edit,
    not the damage a features read refuses."""
    manifest = zarr_store.record_manifest(store)
    item_path = Path(item_of(str(catalog)).get_self_href() or "")
    document = json.loads(item_path.read_text())
    document["assets"]["manifest"].update({"file:size": manifest.size, "file:checksum": manifest.checksum})
    item_path.write_text(json.dumps(document))
    reseal_links(catalog)


def test_pixels_without_observation_are_nodata(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    copy = tmp_path / "features"
    shutil.copytree(Path(tiny_features).parent, copy)
    store = store_of(str(copy / "catalog.json"))
    counts = xr.open_zarr(store)["valid_count"].drop_vars("spatial_ref").load()  # rewrite valid_count alone
    counts[:10, :12] = 0
    xr.Dataset({"valid_count": counts}).to_zarr(store, mode="r+", zarr_format=2)
    _reseal(copy / "catalog.json", Path(store))
    result = predict.run(
        inputs={"model": tiny_model, "features": str(copy / "catalog.json")},
        output=str(tmp_path / "p"),
        params=PredictParams(tile_size=32, overlap=8, device="cpu"),
    )
    classes = read_asset(result.catalog, "classes")[0]
    assert (classes[:10, :12] == 0).all()
    assert (classes[10:, :] != 0).mean() > 0.99


def _edited_model(tiny_model: str, target: Path, edit: dict[str, object]) -> str:
    shutil.copytree(Path(tiny_model).parent, target)
    config_path = next(target.rglob("model-config.json"))
    config = json.loads(config_path.read_text())
    config.update(edit)
    config_path.write_text(json.dumps(config))
    reseal(target / "catalog.json")
    return str(target / "catalog.json")


def test_features_that_do_not_fit_the_model_are_refused(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    config = json.loads(next(Path(tiny_model).parent.rglob("model-config.json")).read_text())
    fewer_dates = _edited_model(tiny_model, tmp_path / "dates", {"dates": config["dates"][:-1]})
    with pytest.raises(BadInputError, match=r"model takes \d+ dates, the features have \d+"):
        predict.run(
            inputs={"model": fewer_dates, "features": tiny_features}, output=str(tmp_path / "a"), params=PredictParams()
        )
    renamed = ["B2", *config["features"][1:]]
    other_channels = _edited_model(tiny_model, tmp_path / "channels", {"features": renamed})
    with pytest.raises(BadInputError, match=r"feature channels differ \(missing \['B2'\], unexpected \['B02'\]"):
        predict.run(
            inputs={"model": other_channels, "features": tiny_features},
            output=str(tmp_path / "b"),
            params=PredictParams(),
        )
    bad_norm = _edited_model(tiny_model, tmp_path / "norm", {"std": config["std"][:-3]})
    with pytest.raises(BadInputError, match="normalisation has"):
        predict.run(
            inputs={"model": bad_norm, "features": tiny_features}, output=str(tmp_path / "c"), params=PredictParams()
        )
    pickled = tmp_path / "pickled"
    shutil.copytree(Path(tiny_model).parent, pickled)
    weights = next(pickled.rglob("model.safetensors"))
    weights.write_bytes(pickle.dumps({"conv.weight": [1.0, 2.0]}))
    with pytest.raises(BadInputError, match="are a pickle; refusing to load them"):
        predict.run(
            inputs={"model": str(pickled / "catalog.json"), "features": tiny_features},
            output=str(tmp_path / "d"),
            params=PredictParams(),
        )
    assert not any((tmp_path / name).exists() for name in "abcd")


@pytest.mark.slow
def test_cli_plans_predicts_a_tile_and_reports_errors(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    tiles_file = tmp_path / "tiles.json"
    planned = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "plan-tiles",
            "--features",
            tiny_features,
            "--tile-size",
            "48",
            "--window-size",
            "32",
            "--overlap",
            "8",
            "--out",
            str(tiles_file),
            "--outputs-dir",
            str(tmp_path / "argo"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert planned.returncode == 0, planned.stderr
    line = json.loads(planned.stdout)
    assert [t["id"] for t in line["tiles"]] == [t["id"] for t in json.loads(tiles_file.read_text())]
    assert json.loads((tmp_path / "argo" / "tiles").read_text()) == line["tiles"]  # withParam input
    first = line["tiles"][0]["id"]
    predicted = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            tiny_model,
            "--features",
            tiny_features,
            "--out",
            str(tmp_path / first),
            "--tile",
            first,
            "--tiles",
            str(tiles_file),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["items"][0].endswith(f"-tile-{first}")
    refused = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            tiny_features,
            "--features",
            tiny_features,
            "--out",
            str(tmp_path / "bad"),
            "--tile",
            first,
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "--tile and --tiles go together" in refused.stderr
    wrong = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            tiny_features,
            "--features",
            tiny_features,
            "--out",
            str(tmp_path / "bad"),
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert wrong.returncode == 2
    assert "holds no model item" in wrong.stderr
    assert "deep-lulc train" in wrong.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.gpu
def test_cuda_prediction_agrees_with_cpu(single: str, tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    """float16 autocast and channels-last on CUDA must give the CPU map up to near-ties."""
    params = PredictParams(tile_size=32, overlap=8, device="cuda", probabilities=True)
    result = predict.run(inputs={"model": tiny_model, "features": tiny_features}, output=str(tmp_path), params=params)
    cuda_classes, cpu_classes = read_asset(result.catalog, "classes"), read_asset(single, "classes")
    assert (cuda_classes == cpu_classes).mean() > 0.99
    assert json.loads((tmp_path / "params.json").read_text())["params"]["batch_size"] == 8


def test_merge_cli_takes_argos_aggregated_json_list() -> None:
    from deep_lulc.shared.stage.runtime import expand_hrefs

    assert expand_hrefs(['["s3://b/t/a/catalog.json", "s3://b/t/b/catalog.json"]', "c.json"]) == [
        "s3://b/t/a/catalog.json",
        "s3://b/t/b/catalog.json",
        "c.json",
    ]
    with pytest.raises(BadInputError, match="looks like JSON but is not"):
        expand_hrefs(["[broken"])
    with pytest.raises(BadInputError, match="not a JSON array of hrefs"):
        expand_hrefs(["[1, 2]"])


# --- The tiles file: validated entry by entry ------------------------------------------------------------------


def _plan_file(tmp_path: Path, edit: object = None) -> Path:
    """A tiles file as plan-tiles writes it (9 tiles of a 100 x 90 grid), after `edit(entries)` if given."""
    entries = [tile.model_dump() for tile in plan.plan_tiles(100, 90, tile_size=40, window=32, overlap=8)]
    document = edit(entries) if callable(edit) else entries
    path = tmp_path / "tiles.json"
    path.write_text(json.dumps(document))
    return path


def _edited(index: int, **changes: object) -> object:
    def edit(entries: list[dict[str, object]]) -> list[dict[str, object]]:
        for key, value in changes.items():
            if value is ...:
                del entries[index][key]
            else:
                entries[index][key] = value
        return entries

    return edit


def test_a_planned_tiles_file_reads_back_as_planned(tmp_path: Path) -> None:
    tiles = plan.read_tiles_file(str(_plan_file(tmp_path)))
    assert tiles == plan.plan_tiles(100, 90, tile_size=40, window=32, overlap=8)
    assert [t.id for t in tiles][:3] == ["r000-c000", "r000-c001", "r000-c002"]
    assert plan.find_tile(tiles, "r002-c001", href="x").core == PixelWindow(Span(80, 100), Span(40, 80))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda entries: {"tiles": entries}, r"is not a list of tile objects \(Input should be a valid list\)"),
        (lambda entries: [], "holds no tiles"),
        (lambda entries: [*entries, 7], r"entry 9: Input should be a valid dictionary"),
        (_edited(2, row=...), r"entry 2 \(id 'r000-c002'\): row: Field required"),
        (_edited(4, colour="red"), r"entry 4 \(id 'r001-c001'\): colour: Extra inputs are not permitted"),
        (_edited(1, height="40"), r"entry 1 \(id 'r000-c001'\): height: Input should be a valid integer"),
        (_edited(1, tiles=True), r"entry 1 \(id 'r000-c001'\): tiles: Input should be a valid integer"),
        (_edited(3, width=-5), r"entry 3 \(id 'r001-c000'\): width: Input should be greater than or equal to 1"),
        (_edited(8, row=90), r"entry 8 \(id 'r002-c002'\): its region \(rows 90\.\.110, .*outside the 100 x 90 grid"),
        (_edited(0, read_width=200), r"entry 0 \(id 'r000-c000'\): its read region reaches outside"),
        (_edited(0, overlap=16), r"entry 0 .*: overlap 16 is not less than half of window_size 32"),
        (_edited(5, id="r000-c000"), r"lists tile ids \['r000-c000'\] more than once"),
        (_edited(6, row=..., col="0"), r"entry 6 \(id 'r002-c000'\): row: Field required \(1 more problem\)"),
    ],
)
def test_a_malformed_tiles_file_is_bad_input_naming_the_entry(tmp_path: Path, edit: object, problem: str) -> None:
    path = _plan_file(tmp_path, edit)
    with pytest.raises(BadInputError, match=rf"tiles file .*tiles\.json:? {problem}.*; fix: pass the tiles\.json"):
        plan.read_tiles_file(str(path))


def test_a_tiles_file_that_is_not_json_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "tiles.json"
    path.write_bytes(b'[{"id": "r000-c000",')
    with pytest.raises(BadInputError, match=r"tiles file .*tiles\.json is not JSON"):
        plan.read_tiles_file(str(path))


@pytest.mark.slow
def test_cli_predict_with_a_malformed_tiles_file_exits_2_before_reading_model_or_features(tmp_path: Path) -> None:
    path = _plan_file(tmp_path, _edited(0, height=-1))
    failed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "predict",
            "--model",
            str(tmp_path / "no-model" / "catalog.json"),
            "--features",
            str(tmp_path / "no-features" / "catalog.json"),
            "--out",
            str(tmp_path / "out"),
            "--tiles",
            str(path),
            "--tile",
            "r000-c000",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=False,
    )
    assert failed.returncode == 2, failed.stderr[-2000:]
    assert failed.stdout == ""
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("deep-lulc predict: error: tiles file ")
    assert "entry 0 (id 'r000-c000'): height: Input should be greater than or equal to 1" in lines[0]
    assert not (tmp_path / "out").exists()

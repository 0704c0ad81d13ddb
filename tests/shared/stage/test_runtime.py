"""The stage runtime: commands generated from the params models, and the file-output stages (`search`,
`plan-tiles`) under the same contract as the others (idempotent reruns, provenance, `cube` reading
`search`'s ItemCollection)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
import xarray as xr
from pydantic import Field
from pydantic_core import PydanticUndefined
from typer.testing import CliRunner

from deep_lulc.shared.stage.contract import NoInputs, StageInputs, StageParams
from deep_lulc.shared.stage.runtime import Stage, command
from deep_lulc.stages.cli import COMMANDS, app

RUNNER = CliRunner()


def _click_command(name: str) -> Any:
    group: Any = typer.main.get_command(app)
    return group.commands[name]


@pytest.mark.parametrize("stage", COMMANDS, ids=lambda s: s.name)
def test_every_params_field_is_an_option_with_the_models_default_and_help(stage: Stage) -> None:
    options = {param.name: param for param in _click_command(stage.name).params}
    for name, info in stage.params.model_fields.items():
        if name in stage.hidden:
            assert name not in options
            continue
        option = options[name]
        assert f"--{name.replace('_', '-')}" in option.opts
        assert option.help, f"{stage.name} --{name} has no help: give the field a description"
        assert option.help == info.description
        if info.default is PydanticUndefined:
            assert option.required
            continue
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(str(v) for v in default)
        assert option.default == default, (stage.name, name)
    assert stage.help, f"{stage.name}: give {stage.params.__name__} a docstring (the command's help)"
    for name, info in stage.inputs.model_fields.items():
        if stage.hrefs is not None and name == stage.hrefs.field:  # positional: the hrefs argument
            assert name not in options
            assert options["hrefs"].required == stage.hrefs.required
            continue
        assert options[name].required == info.is_required()
        assert options[name].help == info.description


class _ToyInputs(StageInputs):
    src: str = Field(description="Source.")
    extra: str | None = Field(None, description="Optional.")


class _Toy(StageParams):
    """A toy."""

    size: int = Field(3, ge=1, description="Edge.")
    mode: str = Field("a", description="Mode.")
    values: tuple[int, ...] = Field((1, 2), description="Values.")
    flag: bool | None = Field(None, description="Tri-state.")


def _toy_run(*, inputs: _ToyInputs, output: str, params: _Toy) -> object:
    from deep_lulc.shared.stage.contract import StageResult

    assert isinstance(inputs, _ToyInputs)  # the runtime hands `run` the validated model
    extra = {"params": params.model_dump(), "inputs": inputs.hrefs()}
    return StageResult(stage="toy", catalog=output, items=(), extra=extra)


def test_generated_command_parses_into_the_params_model_and_validates_before_running() -> None:
    toy = Stage("toy", _ToyInputs, _Toy, run=f"{__name__}:_toy_run")
    toy_app = typer.Typer()
    toy_app.command("toy")(command(toy))
    toy_app.command("other")(lambda: None)
    ok = RUNNER.invoke(toy_app, ["toy", "--src", "x", "--out", "o", "--values", "4,5", "--no-flag", "--size", "7"])
    assert ok.exit_code == 0, ok.output
    line = json.loads(ok.stdout.strip().splitlines()[-1])
    assert line["params"] == {"overwrite": False, "size": 7, "mode": "a", "values": [4, 5], "flag": False}
    assert line["inputs"] == {"src": "x"}
    bad = RUNNER.invoke(toy_app, ["toy", "--src", "x", "--out", "o", "--size", "0"])
    assert bad.exit_code == 2
    assert "--size: Input should be greater than or equal to 1" in bad.output
    not_a_list = RUNNER.invoke(toy_app, ["toy", "--src", "x", "--out", "o", "--values", "4,x"])
    assert not_a_list.exit_code == 2
    assert "--values '4,x' is not a comma-separated list of ints" in not_a_list.output


def test_a_field_clashing_with_a_runtime_option_is_refused() -> None:
    class Clash(StageParams):
        out: str = Field("x", description="Clashes with --out.")

    with pytest.raises(RuntimeError, match=r"clash with runtime options"):
        command(Stage("clash", NoInputs, Clash, run="x:y"))


def _deep_lulc(*args: str) -> tuple[int, str, str]:
    result = RUNNER.invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_search_is_idempotent_records_provenance_and_feeds_cube(tiny_catalog: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.json"
    period = ["--start", "2023-01-01", "--end", "2023-06-30"]
    search = [
        "search",
        "--stac",
        str(tiny_catalog / "catalog.json"),
        "--aoi",
        str(tiny_catalog / "aoi-train.geojson"),
        *period,
        "--out",
        str(items),
    ]
    code, first, _ = _deep_lulc(*search)
    assert code == 0
    record = json.loads((tmp_path / "items.json.run.json").read_text())
    assert record["request"]["stage"] == "search"
    assert record["request"]["params"]["start"] == "2023-01-01"
    os.utime(items, (1, 1))
    code, again, _ = _deep_lulc(*search)
    assert code == 0
    assert json.loads(again) == json.loads(first)
    assert items.stat().st_mtime == 1, "a rerun of the same request touches nothing"
    code, _, _ = _deep_lulc(*search, "--overwrite")
    assert code == 0
    assert items.stat().st_mtime > 1

    cube_args = ["--aoi", str(tiny_catalog / "aoi-train.geojson"), *period, "--chunk-size", "64"]
    code, from_list, _ = _deep_lulc("cube", "--stac", str(items), "--out", str(tmp_path / "c1"), *cube_args)
    assert code == 0
    code, from_catalog, _ = _deep_lulc(
        "cube", "--stac", str(tiny_catalog / "catalog.json"), "--out", str(tmp_path / "c2"), *cube_args
    )
    assert code == 0
    listed, direct = json.loads(from_list), json.loads(from_catalog)
    assert listed["shape"] == direct["shape"]
    assert listed["shape"][0] >= 2
    xr.testing.assert_identical(xr.open_zarr(listed["cube"]).load(), xr.open_zarr(direct["cube"]).load())


def test_cube_refuses_a_scene_list_with_relative_asset_hrefs(tiny_catalog: Path, tmp_path: Path) -> None:
    items = tmp_path / "items.json"
    base = ["--aoi", str(tiny_catalog / "aoi-train.geojson"), "--start", "2023-01-01", "--end", "2023-03-31"]
    code, _, _ = _deep_lulc("search", "--stac", str(tiny_catalog / "catalog.json"), *base, "--out", str(items))
    assert code == 0
    document = json.loads(items.read_text())
    first = document["features"][0]
    key = next(iter(first["assets"]))
    first["assets"][key]["href"] = "B04.tif"
    items.write_text(json.dumps(document))
    code, stdout, stderr = _deep_lulc("cube", "--stac", str(items), *base, "--out", str(tmp_path / "cube"))
    assert code == 2
    assert "relative asset href 'B04.tif'" in stderr
    assert stdout == ""
    assert not (tmp_path / "cube").exists()


def test_plan_tiles_is_idempotent_with_its_request_beside_the_file(tiny_features: str, tmp_path: Path) -> None:
    tiles = tmp_path / "tiles.json"
    args = [
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
        str(tiles),
    ]
    code, first, _ = _deep_lulc(*args)
    assert code == 0
    record = json.loads((tmp_path / "tiles.json.run.json").read_text())
    assert record["request"]["params"] == {"tile_size": 48, "window_size": 32, "overlap": 8, "resolution": 10.0}
    os.utime(tiles, (1, 1))
    code, again, _ = _deep_lulc(*args)
    assert code == 0
    assert json.loads(again) == json.loads(first)
    assert tiles.stat().st_mtime == 1
    code, changed, _ = _deep_lulc(*args[:-2], "--tile-size", "64", "--out", str(tiles))
    assert code == 0
    assert json.loads(changed)["tiles"] != json.loads(first)["tiles"]

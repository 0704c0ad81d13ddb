"""The distribution layout: one import package, every stage folder packaged, no generic top-level names."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deep_lulc.shared.version import __version__
from deep_lulc.stages.cli import app

from ..conftest import BIN, PROJECT_ROOT

STAGE_DIRS = sorted(p.name for p in (PROJECT_ROOT / "stages").iterdir() if p.is_dir() and not p.name.startswith("__"))
PACKAGE_DIRS = {
    "deep_lulc." + ".".join(init.parent.relative_to(PROJECT_ROOT).parts): init.parent
    for top in ("shared", "stages")
    for init in (PROJECT_ROOT / top).rglob("__init__.py")
}


def test_every_package_folder_is_packaged() -> None:
    """An explicit list, because `package-dir` maps two folders into one namespace; a folder missing from it
    works in an editable install and is absent from the wheel."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    packaged = set(config["tool"]["setuptools"]["packages"])
    assert {f"deep_lulc.stages.{name}" for name in STAGE_DIRS} <= set(PACKAGE_DIRS)
    missing = sorted(set(PACKAGE_DIRS) - packaged)
    assert not missing, f"package folders not listed in pyproject packages: {missing}"
    for name, folder in PACKAGE_DIRS.items():
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").parent == folder


@pytest.mark.parametrize("generic", ["shared", "stages"])
def test_no_generic_top_level_import(generic: str, tmp_path: Path) -> None:
    # Run from an unrelated folder so the project root is not on sys.path by accident.
    probe = subprocess.run(
        [sys.executable, "-c", f"import {generic}"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert probe.returncode != 0, f"'import {generic}' works: the distribution leaks a generic top-level name"
    assert "ModuleNotFoundError" in probe.stderr


def test_version_flag() -> None:
    completed = subprocess.run([str(BIN / "deep-lulc"), "--version"], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == f"deep-lulc {__version__}"


def test_every_subcommand_help_shows_an_example() -> None:
    runner = CliRunner()
    commands = [command.name for command in app.registered_commands]
    assert {"synth", "demo"} <= set(commands)
    for name in commands:
        result = runner.invoke(app, [str(name), "--help"])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output, name
        assert f"deep-lulc {name}" in result.output, name


def test_pins_from_the_brief() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    dependencies = config["project"]["dependencies"]
    assert "torch==2.14.1" in dependencies
    assert "torchvision==0.29.1" in dependencies
    lock = (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.14.1" in lock
    assert "torchvision==0.29.1" in lock
    assert any(line.startswith("fastai==2.8.") for line in lock)
    for package in ("pystac", "pystac-client", "stackstac", "xarray", "dask", "odc-stac", "rioxarray", "typer"):
        assert any(line.lower().startswith(f"{package}==") for line in lock), package


def test_stages_import_only_shared_never_another_stage() -> None:
    """Independent containers: a stage reaches other stages' artifacts through `deep_lulc.shared` only.
    The demo (which chains every stage) and the CLI entry point (which lists them) are the exceptions."""
    import ast

    stages_dir = Path(__file__).resolve().parents[2] / "stages"
    crossings = []
    for module in sorted(stages_dir.glob("*/*.py")):
        stage = module.parent.name
        if stage == "demo":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["deep_lulc", "stages"] and len(parts) > 2 and parts[2] != stage:
                    crossings.append(f"{module.relative_to(stages_dir.parent)} imports {name}")
    assert not crossings, crossings


# Which layers of shared/ each layer may import (the root modules `errors` and `version` are open to all).
# docs/architecture.md draws the same table; change both together.
LAYERS: dict[str, set[str]] = {
    "geo": set(),
    "io": {"geo"},
    "stage": {"io", "geo"},
    "lulc": {"io", "geo"},
    "models": {"io", "geo"},
    "sources": {"stage", "io", "geo"},
    "products": {"sources", "models", "lulc", "stage", "io", "geo"},
}
ROOT_MODULES = {"errors", "version"}


def _deep_lulc_imports(module: Path) -> list[list[str]]:
    import ast

    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [[*node.module.split("."), alias.name] for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name.split(".") for alias in node.names]
    return [parts for parts in found if parts[0] == "deep_lulc"]


def test_shared_layers_import_only_downwards() -> None:
    """A layer that reaches up (a network opening a features store, a label reader needing the AOI parser)
    is how a grab-bag grows back; every module of shared/ is checked, lazy imports inside functions too."""
    shared_dir = PROJECT_ROOT / "shared"
    assert {p.name for p in shared_dir.iterdir() if (p / "__init__.py").is_file()} == set(LAYERS)
    assert {p.stem for p in shared_dir.glob("*.py")} == ROOT_MODULES | {"__init__"}
    crossings = []
    for module in sorted(shared_dir.rglob("*.py")):
        relative = module.relative_to(shared_dir).parts
        layer = relative[0] if len(relative) > 1 else None
        for parts in _deep_lulc_imports(module):
            assert parts[1] == "shared", f"{module} imports {'.'.join(parts)}: shared/ never imports a stage"
            target = parts[2] if len(parts) > 2 else None
            if target in ROOT_MODULES or target == layer:
                continue
            allowed = LAYERS[layer] if layer else set()
            if target not in allowed:
                crossings.append(f"{module.relative_to(PROJECT_ROOT)} ({layer or 'root'}) imports {'.'.join(parts)}")
    assert not crossings, crossings

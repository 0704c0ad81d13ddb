"""The distribution layout: one import package, every stage folder packaged, no generic top-level names."""

from __future__ import annotations

import importlib
import shutil
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
    if init.parent != PROJECT_ROOT / "shared" / "root"  # that folder is `deep_lulc` itself (package-dir)
} | {"deep_lulc": PROJECT_ROOT / "shared" / "root"}


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
    # pyproject declares compatible ranges that admit the lock's pins; only the lock pins exactly
    assert "torch>=2.14.1,<2.15" in dependencies
    assert "torchvision>=0.29.1,<0.30" in dependencies
    assert not [d for d in dependencies if "==" in d], "exact pins belong in constraints.txt"
    lock = (PROJECT_ROOT / "constraints.txt").read_text().splitlines()
    assert "torch==2.14.1" in lock
    assert "torchvision==0.29.1" in lock
    assert any(line.startswith("fastai==2.8.") for line in lock)
    for package in ("pystac", "pystac-client", "stackstac", "xarray", "dask", "odc-stac", "rioxarray", "typer"):
        assert any(line.lower().startswith(f"{package}==") for line in lock), package


BUILD_LEFTOVERS = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "node_modules",
    "demo-output",
    ".*_cache",
)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_without_the_source_tree(tmp_path: Path) -> None:
    """What a user gets from `make dist`: the wheel, installed (not editable) into a fresh virtual environment
    that reuses this environment's dependencies, imports every package from its own site-packages and runs
    a stage. An editable install hides a package missing from the wheel; this does not. The build runs in a
    copy of the tree: setuptools keeps what `build/lib` holds from earlier builds, which would hide it too."""
    source = tmp_path / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(*BUILD_LEFTOVERS))
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(tmp_path / "dist"), "."],
        cwd=source,
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    wheels = list((tmp_path / "dist").glob("deep_lulc-*-py3-none-any.whl"))
    assert len(wheels) == 1
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    own = next((venv / "lib").glob("python3*/site-packages"))
    dependencies = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    # A path line, not a site dir: the dependencies, without this environment's editable finder (.pth files
    # are read in site dirs only), so `deep_lulc` can come from nowhere but the wheel.
    (own / "dependencies.pth").write_text(dependencies + "\n")
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheels[0])],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import deep_lulc.shared.products.area, deep_lulc.stages.area.stage as s; print(s.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert probe.stdout.strip().startswith(str(own)), probe.stdout
    version = subprocess.run(
        [str(venv / "bin" / "deep-lulc"), "--version"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert version.stdout.strip() == f"deep-lulc {__version__}"
    synth = subprocess.run(
        [str(venv / "bin" / "deep-lulc"), "synth", "--size", "128", "--dates", "4", "--out", str(tmp_path / "synth")],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert synth.returncode == 0, synth.stderr[-2000:]
    assert (tmp_path / "synth" / "catalog.json").is_file()
    # `deep-lulc run` reads the Argo manifests and the example configs from the wheel, and starts the wheel's
    # own `deep-lulc` for each step: here the first step, refused for its missing AOI, inside the run's line
    for data in ("argo/pipeline.yaml", "argo/workflowtemplate.yaml", "configs/demo.yaml", "configs/real-data.yaml"):
        assert (own / "deep_lulc" / data).is_file(), f"{data} is not in the wheel"
    shutil.copy(own / "deep_lulc" / "configs" / "demo.yaml", tmp_path / "demo.yaml")
    run = subprocess.run(
        [
            str(venv / "bin" / "deep-lulc"),
            "run",
            str(tmp_path / "demo.yaml"),
            "--override",
            "train.aoi=/nonexistent.json",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr[-2000:]
    assert "step cube-train (cube) exited 2: deep-lulc cube: error: AOI file not found" in run.stderr

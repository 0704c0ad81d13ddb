"""Session fixtures: offline STAC validation, a real S3-compatible server on loopback, a tiny synthetic catalog."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
from pystac.validation import JsonSchemaSTACValidator, set_validator
from pystac.validation.stac_validator import STACValidator

from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams

from .stac_api_server import stac_api_server

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
SCHEMAS = SHARED / "schemas"
REALDATA = SHARED / "realdata"
BIN = Path(sys.executable).parent

# Small enough for seconds, big enough for clouds, towns, lakes and both AOIs.
TINY = SynthParams(seed=3, size=128, dates=6)


REQUIRE_SHARED = "DEEP_LULC_REQUIRE_SHARED"  # `.ci/run` sets it: CI never skips for want of ../shared
SHARED_PRESENT = (SCHEMAS / "index.json").is_file()
SHARED_ABSENT = f"../shared is absent at {SHARED} (offline schemas, real data); {REQUIRE_SHARED}=1 makes this an error"


def needs_shared() -> None:
    """Skip the calling test when ../shared is absent: a clone outside this workspace runs everything else."""
    if not SHARED_PRESENT:
        pytest.skip(SHARED_ABSENT)


class _SkippingValidator(STACValidator):
    """Without the offline bundle, validating would fetch schemas from the network: skip the test instead."""

    def validate_core(self, *args: Any, **kwargs: Any) -> None:
        needs_shared()

    def validate_extension(self, *args: Any, **kwargs: Any) -> None:
        needs_shared()


def pytest_configure(config: pytest.Config) -> None:
    if not SHARED_PRESENT and os.environ.get(REQUIRE_SHARED) == "1":
        raise pytest.UsageError(
            f"../shared is missing at {SHARED} and {REQUIRE_SHARED}=1 requires it: check out the workspace's "
            "shared/ (offline schemas, real data) beside the project"
        )


@pytest.fixture(scope="session", autouse=True)
def offline_stac_validation() -> None:
    """Point pystac's validator at the offline schema bundle, so validation never touches the network."""
    if not SHARED_PRESENT:
        set_validator(_SkippingValidator())
        return
    index = json.loads((SCHEMAS / "index.json").read_text())
    validator = JsonSchemaSTACValidator()
    for url, relative in index.items():
        if relative.startswith("stac/"):
            validator.schema_cache[url] = json.loads((SCHEMAS / relative).read_text())
    set_validator(validator)


def validate_tree(catalog_href: str | Path) -> int:
    """Validate the catalog and every child and item below it; returns how many objects were checked."""
    catalog = pystac.read_file(str(catalog_href))
    assert isinstance(catalog, pystac.Catalog)
    checked = 0
    for parent, _, items in catalog.walk():
        parent.validate()
        checked += 1
        for item in items:
            item.validate()
            checked += 1
    return checked


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """In-process commands (CliRunner, `runtime.execute`) point the root logger at the runner's stream, closed
    after each call, and quiet noisy libraries: put handlers and levels back, so no test depends on which
    ran before it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in logging.Logger.manager.loggerDict.items():  # configure_logging quiets noisy libraries
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic catalog shared by read-only tests."""
    out = tmp_path_factory.mktemp("tiny-synth")
    synth.run(inputs={}, output=str(out), params=TINY)
    return out


@pytest.fixture(scope="session")
def stac_api(tiny_catalog: Path) -> Iterator[str]:
    """A real STAC API (stac-fastapi-pgstac + PostgreSQL/PostGIS) on loopback serving the tiny catalog's
    `sentinel-2-l2a` items with absolute asset paths; yields its root URL. See tests/stac_api_server.py."""
    with stac_api_server(tiny_catalog, ["sentinel-2-l2a"]) as api:
        yield api.url


CUBE_PERIOD = {"start": dt.date(TINY.year, 1, 1), "end": dt.date(TINY.year, 12, 31)}


@pytest.fixture(scope="session")
def tiny_cube(tiny_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The cube stage's catalog for the tiny catalog's training AOI and first year."""
    from deep_lulc.stages.cube import stage as cube
    from deep_lulc.stages.cube.params import CubeParams

    out = tmp_path_factory.mktemp("cube")
    result = cube.run(
        inputs={"stac": str(tiny_catalog / "catalog.json"), "aoi": str(tiny_catalog / "aoi-train.geojson")},
        output=str(out),
        params=CubeParams(**CUBE_PERIOD),
    )
    return result.catalog


@pytest.fixture(scope="session")
def tiny_features(tiny_cube: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The features stage's catalog for `tiny_cube`."""
    from deep_lulc.stages.features import stage as features
    from deep_lulc.stages.features.params import FeaturesParams

    out = tmp_path_factory.mktemp("features")
    return features.run(inputs={"cube": tiny_cube}, output=str(out), params=FeaturesParams(chunk_size=64)).catalog


@pytest.fixture(scope="session")
def tiny_chips(tiny_features: str, tiny_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Small chips (32 px) from `tiny_features`, both splits populated."""
    from deep_lulc.stages.chips import stage as chips
    from deep_lulc.stages.chips.params import ChipsParams

    out = tmp_path_factory.mktemp("chips")
    params = ChipsParams(
        size=32, sampling="balanced", count=48, block_size=1, val_fraction=0.3, min_labelled=0.3, seed=0
    )
    inputs = {"features": tiny_features, "labels": str(tiny_catalog / "labels.gpkg")}
    return chips.run(inputs=inputs, output=str(out), params=params).catalog


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto in server mode) on loopback; yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the S3-compatible test server (moto_server) did not start")
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback S3 server, with the environment a stage reads its endpoint from."""
    import boto3

    for key, value in {
        "AWS_ENDPOINT_URL": s3_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    name = f"bucket-{time.monotonic_ns()}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def tiny_model(tiny_chips: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A resnet18 U-Net trained for one epoch on `tiny_chips`: enough to exercise predict, not to be good."""
    from deep_lulc.stages.train import stage as train
    from deep_lulc.stages.train.params import TrainParams

    out = tmp_path_factory.mktemp("tiny-model")
    params = TrainParams(
        architecture="unet", encoder="resnet18", epochs=1, batch_size=8, lr=1e-3, pretrained=False, seed=0
    )
    return train.run(inputs={"chips": tiny_chips}, output=str(out), params=params).catalog


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """The whole demo chain at its smallest (256 px, 6 dates a year, 1 epoch): its folder and result line."""
    from deep_lulc.stages.demo import stage as demo
    from deep_lulc.stages.demo.params import DemoParams

    out = tmp_path_factory.mktemp("demo")
    result = demo.run(inputs={}, output=str(out), params=DemoParams(size=256, dates=6, epochs=1))
    return out, result.to_dict()


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


SERVICE_FIXTURES = {"stac_api"}  # PostgreSQL + pgstac behind a real STAC API
SERVICE_MODULES = {"test_stac_browser.py", "test_stac_api.py"}  # Chromium and npm-built STAC Browser; pgstac
SERVICE_MODULES |= {"test_zarr_gdal.py", "test_report_screenshot.py"}  # Debian's gdalinfo; Chromium
# With `pytest -n N` (make test), each worker builds the session fixtures it needs: the tests sharing the most
# expensive one run on one worker, so it is built once.
SHARED_BY_ONE_WORKER = {"tiny_demo": "demo"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that need system services (`make test-fast` leaves them out), and skip `gpu` tests only
    where no CUDA device exists; every other test always runs."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVICE_FIXTURES or item.path.name in SERVICE_MODULES:
            item.add_marker(pytest.mark.services)
        if not SHARED_PRESENT and item.get_closest_marker("needs_shared"):
            item.add_marker(pytest.mark.skip(reason=SHARED_ABSENT))
        for fixture, group in SHARED_BY_ONE_WORKER.items():
            if fixture in fixtures and config.pluginmanager.hasplugin("xdist"):
                item.add_marker(pytest.mark.xdist_group(group))
    try:
        import torch

        has_cuda = bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)

"""Bad inputs, one row each: the real `deep-lulc` CLI in a subprocess, its exit code and its one error line.

The contract (docs/contract.md): on bad input a stage prints exactly one line
`deep-lulc <stage>: error: <problem>; fix: <fix>` on stderr (logs may come before it), nothing on stdout,
exits 2 (bad input), 3 (nothing to do) or 75 (transient), and publishes no catalog. `CASES` is the table in
docs/errors.md; `markdown_table()` renders it and `test_readme_table_matches_cases` keeps the two
in step. Rows marked `bug` are strict xfails: the product does not yet behave as the row requires.

All rows run concurrently from one module fixture: each CLI start costs seconds of imports.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import boto3
import numpy as np
import pyogrio.raw
import pystac
import pytest
import shapely
from affine import Affine
from botocore.exceptions import ClientError
from pyproj import Transformer

from deep_lulc.shared.geo.grids import geobox
from deep_lulc.stages.change import stage as change_stage
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.sample import stage as sample_stage
from deep_lulc.stages.sample.params import SampleParams

from ..class_map_data import write_class_map_catalog
from ..conftest import BIN, PROJECT_ROOT, TINY, cli_env, free_port
from ..resealing import reseal_links
from ..stages.test_chips import SQUARE, write_polygons
from ..stages.test_predict import _edited_model
from ..stages.test_search_cube import _FlakyProxy

YEAR = (f"--start={TINY.year}-01-01", f"--end={TINY.year}-12-31")
CHIPS = [
    "--size=32",
    "--sampling=balanced",
    "--count=48",
    "--block-size=1",
    "--val-fraction=0.3",
    "--min-labelled=0.3",
    "--seed=0",
]  # as the tiny_chips fixture: a run that succeeds
WORKERS = int(os.environ.get("DEEP_LULC_TEST_WORKERS") or max(4, os.cpu_count() or 1))  # CLI starts wait on I/O too
FAST_RETRIES = {"DEEP_LULC_HTTP_BACKOFF": "0.01", "DEEP_LULC_HTTP_RETRIES": "2"}


class UnavailableError(Exception):
    """This machine cannot set the row up (e.g. mounting a filesystem is not permitted): the row skips."""


@dataclass(frozen=True)
class Invocation:
    """What a row runs: `deep-lulc <stage> *args`, with `extra_env` on top of the test environment."""

    args: list[str]
    out: Path | None  # the local --out, which must not hold a published output afterwards; None: not local
    extra_env: dict[str, str] = field(default_factory=dict)
    after: Callable[[], None] | None = None  # further checks once the command has finished


@dataclass
class Workspace:
    """The session fixtures and the shared scaffolding (servers, mounts) that rows build their inputs from."""

    catalog: Path
    cube: str
    features: str
    chips: str
    model: str
    stac_api: str
    root: Path
    stack: ExitStack

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def full_disk(self) -> Path:
        """A 64 KiB tmpfs filled to the last byte: every write on it fails with ENOSPC."""
        mountpoint = self.folder("full-disk")
        try:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
                capture_output=True,
                text=True,
                check=False,
            )
            problem = (mounted.stderr.strip() or f"exit {mounted.returncode}") if mounted.returncode else ""
        except OSError as exc:  # no mount(8) at all
            problem = str(exc)
        if problem:
            raise UnavailableError(
                f"cannot mount a small tmpfs to fill ({problem}): a full filesystem needs root or CAP_SYS_ADMIN"
            )
        self.stack.callback(subprocess.run, ["umount", "-l", str(mountpoint)], check=False)
        filler = mountpoint / "filler"
        try:
            with filler.open("wb") as handle:
                while True:
                    handle.write(b"\0" * 4096)
                    handle.flush()
        except OSError:
            pass
        probe = mountpoint / "probe"
        try:
            probe.write_bytes(b"x" * 4096)
        except OSError:
            probe.unlink(missing_ok=True)
            return mountpoint
        raise UnavailableError("the tmpfs did not fill up: writes beyond its size succeed")

    @cached_property
    def locked_s3(self) -> dict[str, str]:
        """A second moto S3 server that enforces IAM: bucket `locked` holds the cube's catalog.json, and the
        credentials handed out belong to a user without any policy. Returns the environment for the CLI."""
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.stack.callback(process.wait, timeout=10)
        self.stack.callback(process.terminate)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise UnavailableError("the IAM-enforcing moto_server did not start") from None
                time.sleep(0.2)
        admin = {
            "endpoint_url": endpoint,
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        }
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket="locked")
        s3.upload_file(self.cube, "locked", "cube/catalog.json")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="nobody")
        key = iam.create_access_key(UserName="nobody")["AccessKey"]
        # From now on moto authenticates and authorises every request (its documented test switch).
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request, timeout=10).close()
        nobody = boto3.client(
            "s3", **{**admin, "aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}
        )
        with pytest.raises(ClientError, match="AccessDenied"):  # the object is there; reading it is forbidden
            nobody.get_object(Bucket="locked", Key="cube/catalog.json")
        return {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@dataclass(frozen=True)
class BadInput:
    name: str  # the row's key in the docs/errors.md table
    description: str  # the bad input, for people
    stage: str
    prepare: Callable[[Workspace, Path], Invocation]  # (workspace, this row's folder) -> what to run
    expected_exit: int
    expected_message_regex: str  # searched in the error line; on exit 0, in the whole stderr
    message: str  # the line docs/errors.md shows (observed, shortened)
    bug: str | None = None  # the product does not meet the row yet: a strict xfail naming the defect


# -- inputs the rows build -------------------------------------------------------------------------------


def label_polygons(workspace: Workspace) -> tuple[list[shapely.Geometry], list[int]]:
    """The synthetic catalog's own training labels (EPSG:32633) and their `lulc` codes."""
    meta, _, geometry, fields = pyogrio.raw.read(workspace.catalog / "labels.gpkg")
    codes = fields[list(meta["fields"]).index("lulc")]
    return list(shapely.from_wkb(geometry)), [int(code) for code in codes]


def shapefile_without_prj(workspace: Workspace, folder: Path) -> str:
    """The real labels reprojected to EPSG:3857 and saved as a Shapefile whose .prj is then deleted."""
    polygons, codes = label_polygons(workspace)
    to_mercator = Transformer.from_crs(32633, 3857, always_xy=True)
    mercator = shapely.transform(
        np.array(polygons, dtype=object), lambda xy: np.column_stack(to_mercator.transform(xy[:, 0], xy[:, 1]))
    )
    path = folder / "labels-3857.shp"
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(mercator),
        field_data=[np.array(codes, dtype=np.int32)],
        fields=["lulc"],
        geometry_type="Polygon",
        crs="EPSG:3857",
        driver="ESRI Shapefile",
    )
    path.with_suffix(".prj").unlink()
    return str(path)


BOWTIE = shapely.Polygon([(520_100, 5_116_000), (520_500, 5_116_400), (520_500, 5_116_000), (520_100, 5_116_400)])
SLIVER = shapely.Polygon([(520_100, 5_116_000), (520_500, 5_116_400), (520_100, 5_116_000)])  # zero area


def labels_with_a_bowtie(workspace: Workspace, folder: Path) -> str:
    """The real labels with a bow-tie polygon as feature 1: invalid, but repairable into two triangles."""
    polygons, codes = label_polygons(workspace)
    return write_polygons(folder / "labels.gpkg", [BOWTIE, *polygons], [2, *codes])


def chips_with(labels: Callable[[Workspace, Path], str]) -> Callable[[Workspace, Path], Invocation]:
    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        out = folder / "out"
        args = ["--features", workspace.features, "--labels", labels(workspace, folder), "--out", str(out), *CHIPS]
        return Invocation(args, out)

    return prepare


def features_of(cube: Callable[[Workspace, Path], str], *extra: str) -> Callable[[Workspace, Path], Invocation]:
    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        return Invocation(["--cube", cube(workspace, folder), "--out", str(folder / "out"), *extra], folder / "out")

    return prepare


def cube_of(stac: Callable[[Workspace, Path], str], aoi: str, *extra: str) -> Callable[[Workspace, Path], Invocation]:
    """`cube --stac STAC --aoi AOI`, where an AOI that is not a bbox names a file of the tiny catalog."""

    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        where = aoi if "," in aoi or aoi.startswith("/") else str(workspace.catalog / aoi)
        args = ["--stac", stac(workspace, folder), "--aoi", where, *YEAR, "--out", str(folder / "out"), *extra]
        return Invocation(args, folder / "out")

    return prepare


def tiny_stac(workspace: Workspace, _folder: Path) -> str:
    return str(workspace.catalog / "catalog.json")


def catalog_with_a_truncated_cog(workspace: Workspace, folder: Path) -> str:
    """A copy of the tiny catalog in which the red band of the first acquisition lost its second half."""
    copy = folder / "catalog"
    shutil.copytree(workspace.catalog, copy)
    item = pystac.Item.from_file(
        str(copy / "sentinel-2-l2a" / "S2A_33TWM_20230103_0_L2A" / "S2A_33TWM_20230103_0_L2A.json")
    )
    cog = Path(item.assets["red"].get_absolute_href() or "")
    assert cog.is_file(), cog
    with cog.open("r+b") as handle:
        handle.truncate(cog.stat().st_size // 2)
    return str(copy / "catalog.json")


def not_json(_workspace: Workspace, folder: Path) -> str:
    path = folder / "catalog.json"
    path.write_text("<html>503 Service Unavailable</html>\n")
    return str(path)


def predict_with(model: Callable[[Workspace, Path], str]) -> Callable[[Workspace, Path], Invocation]:
    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        args = [
            "--model",
            model(workspace, folder),
            "--features",
            workspace.features,
            "--out",
            str(folder / "out"),
            "--device",
            "cpu",
        ]
        return Invocation(args, folder / "out")

    return prepare


def model_with_fewer_dates(workspace: Workspace, folder: Path) -> str:
    """The model's config as if it had been trained on features one date shorter (channels are date-major)."""
    config = json.loads(next(Path(workspace.model).parent.rglob("model-config.json")).read_text())
    per_date = len(config["features"])
    shorter = {key: config[key][:-per_date] for key in ("channels", "mean", "std")}
    edit = {"dates": config["dates"][:-1], "n_in": config["n_in"] - per_date, **shorter}
    return _edited_model(workspace.model, folder / "model", edit)


def model_weights_pickled(workspace: Workspace, folder: Path) -> str:
    shutil.copytree(Path(workspace.model).parent, folder / "model")
    next((folder / "model").rglob("model.safetensors")).write_bytes(pickle.dumps({"conv.weight": [1.0, 2.0]}))
    return str(folder / "model" / "catalog.json")


def search_through_flaky_api(failures: int) -> Callable[[Workspace, Path], Invocation]:
    """`search` through a loopback proxy answering 503 to the first `failures` requests (-1: to all)."""

    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        proxy = workspace.stack.enter_context(_FlakyProxy(workspace.stac_api, failures=failures))
        out = folder / "items.json"
        args = [
            "--stac",
            proxy.url,
            "--aoi",
            str(workspace.catalog / "aoi-train.geojson"),
            *YEAR,
            "--page-size=4",
            "--out",
            str(out),
        ]

        def served_the_failures() -> None:
            assert proxy.requests > max(failures, 0), "the proxy was not asked"
            if failures > 0:
                assert proxy.remaining == 0, "the 503 answers were not all served before the recovery"

        return Invocation(args, out, dict(FAST_RETRIES), served_the_failures)

    return prepare


def s3_read_denied(workspace: Workspace, folder: Path) -> Invocation:
    args = ["--cube", "s3://locked/cube/catalog.json", "--out", str(folder / "out")]
    return Invocation(args, folder / "out", workspace.locked_s3)


def search_args(workspace: Workspace, out: str, *extra: str, dates: tuple[str, ...] = YEAR) -> list[str]:
    """`search` arguments for the tiny static catalog and its training AOI."""
    stac, aoi = workspace.catalog / "catalog.json", workspace.catalog / "aoi-train.geojson"
    return ["--stac", str(stac), "--aoi", str(aoi), *dates, *extra, "--out", out]


def s3_write_denied(workspace: Workspace, _folder: Path) -> Invocation:
    return Invocation(search_args(workspace, "s3://locked/search/items.json"), None, workspace.locked_s3)


def search_onto_full_disk(workspace: Workspace, _folder: Path) -> Invocation:
    out = workspace.full_disk / "items.json"
    return Invocation(search_args(workspace, str(out)), out)


def features_onto_full_disk(workspace: Workspace, _folder: Path) -> Invocation:
    out = workspace.full_disk / "features"
    return Invocation(["--cube", workspace.cube, "--out", str(out)], out)


def onto_full_disk(stage: str) -> Callable[[Workspace, Path], Invocation]:
    """`chips`, `train` or `predict` from the session fixtures into a folder of the full filesystem."""

    def prepare(workspace: Workspace, _folder: Path) -> Invocation:
        out = workspace.full_disk / stage
        inputs = {
            "chips": ["--features", workspace.features, "--labels", str(workspace.catalog / "labels.gpkg"), *CHIPS],
            "train": ["--chips", workspace.chips, "--epochs", "1"],
            "predict": ["--model", workspace.model, "--features", workspace.features, "--device", "cpu"],
        }[stage]
        return Invocation([*inputs, "--out", str(out)], out)

    return prepare


def search_of(*extra: str, dates: tuple[str, ...] = YEAR) -> Callable[[Workspace, Path], Invocation]:
    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        out = folder / "items.json"
        return Invocation(search_args(workspace, str(out), *extra, dates=dates), out)

    return prepare


def unknown_codes(_workspace: Workspace, folder: Path) -> str:
    return write_polygons(folder / "labels.gpkg", [SQUARE, SQUARE.buffer(-50), SQUARE.buffer(-100)], [41, 2, 77])


def no_labels(_workspace: Workspace, folder: Path) -> str:
    return write_polygons(folder / "labels.gpkg", [], [])


def labels_far_away(_workspace: Workspace, folder: Path) -> str:
    return write_polygons(folder / "labels.gpkg", [shapely.box(100_000, 100_000, 100_500, 100_500)], [2])


def only_a_sliver(_workspace: Workspace, folder: Path) -> str:
    return write_polygons(folder / "labels.gpkg", [SLIVER], [2])


def features_with_an_altered_chunk(workspace: Workspace, folder: Path) -> str:
    """A copy of the features whose first chunk has one byte changed in place: same size, still compressed data."""
    shutil.copytree(Path(workspace.features).parent, folder / "features")
    chunk = next((folder / "features").rglob("features/0.0.0.0"))
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 4
    chunk.write_bytes(bytes(data))
    return str(folder / "features" / "catalog.json")


def predict_on(features: Callable[[Workspace, Path], str]) -> Callable[[Workspace, Path], Invocation]:
    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        args = [
            "--model",
            workspace.model,
            "--features",
            features(workspace, folder),
            "--out",
            str(folder / "out"),
            "--device",
            "cpu",
        ]
        return Invocation(args, folder / "out")

    return prepare


def model_with_swapped_legend(workspace: Workspace, folder: Path) -> str:
    """The model's config with two class values swapped, its item not told: the map's legend would swap."""
    shutil.copytree(Path(workspace.model).parent, folder / "model")
    config_path = next((folder / "model").rglob("model-config.json"))
    config = json.loads(config_path.read_text())
    values = config["class_values"]
    values[1], values[2] = values[2], values[1]
    config_path.write_text(json.dumps(config))
    return str(folder / "model" / "catalog.json")


def catalog_reading_outside(workspace: Workspace, folder: Path) -> str:
    """A copy of the tiny catalog whose first scene's red band climbs to /etc/passwd (more ../ than any temporary
    folder is deep: above the root, .. stays at the root)."""
    copy = folder / "catalog"
    shutil.copytree(workspace.catalog, copy)
    item_path = next(copy.rglob("S2A_33TWM_20230103_0_L2A.json"))
    document = json.loads(item_path.read_text())
    document["assets"]["red"]["href"] = "../" * 24 + "etc/passwd"
    item_path.write_text(json.dumps(document))
    reseal_links(copy / "catalog.json")  # an edit recorded as a writer would: the href itself must be refused
    return str(copy / "catalog.json")


SAMPLED_GRID = geobox(32633, Affine(10, 0, 500_000, 0, -10, 5_100_000), 60, 80)


def sampled_map(folder: Path, *, forest_from: int = 40, year: int = 2023) -> str:
    """A small prediction catalog of `year`: cultivated land, forest from column `forest_from`, some water."""
    values = np.full((SAMPLED_GRID.height, SAMPLED_GRID.width), 1, dtype=np.uint8)
    values[:, forest_from:] = 2
    values[:20, :20] = 5
    return write_class_map_catalog(
        folder,
        values,
        grid=SAMPLED_GRID,
        item_id=f"prediction-{year}",
        start=f"{year}-01-01T00:00:00Z",
        end=f"{year}-12-31T23:59:59Z",
    )


def change_series(*years: int) -> Callable[[Workspace, Path], Invocation]:
    """`change` over maps of `years`, given as arguments in that order."""

    def prepare(_workspace: Workspace, folder: Path) -> Invocation:
        maps = [sampled_map(folder / str(year), year=year) for year in years]
        return Invocation([*maps, "--out", str(folder / "out")], folder / "out")

    return prepare


def area_of(
    edit: Callable[[dict[str, np.ndarray], np.ndarray], np.ndarray], *, other_map: bool = False
) -> Callable[[Workspace, Path], Invocation]:
    """`area` on a sample of `sampled_map` labelled with the map's own classes, then `edit`ed: (columns,
    points) -> points, changing the columns in place; `other_map`: estimate with a map that differs."""

    def prepare(_workspace: Workspace, folder: Path) -> Invocation:
        catalog = sampled_map(folder / "map")
        drawn = sample_stage.run(
            inputs={"map": catalog}, output=str(folder / "sample"), params=SampleParams(size=60, min_per_stratum=10)
        )
        meta, _, geometry, fields = pyogrio.raw.read(str(drawn.extra["sample"]), return_fids=True)
        columns = dict(zip([str(n) for n in meta["fields"]], fields, strict=True))
        columns["reference"] = columns["map_class"].astype(np.int32)
        points = edit(columns, shapely.from_wkb(geometry))
        labelled = folder / "labelled.gpkg"
        pyogrio.raw.write(
            str(labelled),
            geometry=shapely.to_wkb(points),
            field_data=list(columns.values()),
            fields=list(columns),
            field_mask=[(values < 0) if name == "reference" else None for name, values in columns.items()],
            geometry_type="Point",
            crs=meta["crs"],
            driver="GPKG",
            layer="sample",
        )
        estimated_map = sampled_map(folder / "other", forest_from=30) if other_map else catalog
        args = ["--map", estimated_map, "--sample", str(labelled), "--out", str(folder / "out")]
        return Invocation(args, folder / "out")

    return prepare


def sample_of_a_series(_workspace: Workspace, folder: Path) -> Invocation:
    """`sample --map` of a change series' catalog: one change map per pair, so no one map to sample."""
    maps = {
        f"map_{index:04d}": sampled_map(folder / str(year), year=year) for index, year in enumerate((2022, 2023, 2024))
    }
    series = change_stage.run(inputs=maps, output=str(folder / "change"), params=ChangeParams(method="raw"))
    return Invocation(["--map", series.catalog, "--out", str(folder / "out")], folder / "out")


def point_moved_off_the_map(columns: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    xs = shapely.get_x(points) + np.where(np.arange(len(points)) == 0, 100_000, 0)
    return np.asarray(shapely.points(xs, shapely.get_y(points)))


def reference_not_in_scheme(columns: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    columns["reference"][0] = 42
    return points


def water_left_unlabelled(columns: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    columns["reference"][columns["map_class"] == 5] = -1
    return points


def as_labelled(_columns: dict[str, np.ndarray], points: np.ndarray) -> np.ndarray:
    return points


def usage_error(_workspace: Workspace, _folder: Path) -> Invocation:
    return Invocation(["--no-such-option", "1"], None)


def run_config(text: str) -> Callable[[Workspace, Path], Invocation]:
    """`run CONFIG --out OUT` with a config over the tiny catalog, `text` appended (YAML; later keys win)."""

    def prepare(workspace: Workspace, folder: Path) -> Invocation:
        catalog = workspace.catalog
        base = (
            f"stac: {{url: {catalog / 'catalog.json'}}}\n"
            f"train: {{aoi: {catalog / 'aoi-train.geojson'}, start: {TINY.year}-01-01, end: {TINY.year}-12-31, "
            f"labels: {catalog / 'labels.gpkg'}}}\n"
            f"predict:\n  aoi: {catalog / 'aoi-predict.geojson'}\n"
            f"  before: {{start: {TINY.year}-01-01, end: {TINY.year}-12-31}}\n"
            f"  after: {{start: {TINY.year + 1}-01-01, end: {TINY.year + 1}-12-31}}\n"
        )
        config = folder / "run.yaml"
        config.write_text(base + text)
        return Invocation([str(config), "--out", str(folder / "out")], folder / "out")

    return prepare


# -- the table -------------------------------------------------------------------------------------------

CASES: list[BadInput] = [
    BadInput(
        name="missing-href",
        description="input href that does not exist",
        stage="features",
        prepare=features_of(lambda _w, _f: "/nonexistent/catalog.json"),
        expected_exit=2,
        expected_message_regex=r"STAC document not found: /nonexistent/catalog\.json; fix: check the path",
        message="STAC document not found: /nonexistent/catalog.json; "
        "fix: check the path or URL and that the object exists",
    ),
    BadInput(
        name="not-json",
        description="input href that is not JSON (an HTML error page saved as catalog.json)",
        stage="features",
        prepare=features_of(not_json),
        expected_exit=2,
        expected_message_regex=r"STAC document is not valid JSON: .*catalog\.json \(Expecting value.*"
        r"; fix: point at a STAC JSON document",
        message="STAC document is not valid JSON: …/catalog.json (Expecting value: line 1 column 1 (char 0)); "
        "fix: point at a STAC JSON document",
    ),
    BadInput(
        name="href-is-directory",
        description="input href that is a directory",
        stage="features",
        prepare=features_of(lambda w, _f: str(Path(w.cube).parent)),
        expected_exit=2,
        expected_message_regex=r"STAC document is a directory, not a file: .*; fix: point at the catalog\.json",
        message="STAC document is a directory, not a file: …/cube0; "
        "fix: point at the catalog.json, collection.json or item JSON inside it",
    ),
    BadInput(
        name="aoi-file-missing",
        description="AOI file that does not exist",
        stage="cube",
        prepare=cube_of(tiny_stac, "/nonexistent/aoi.geojson"),
        expected_exit=2,
        expected_message_regex=r"AOI file not found: /nonexistent/aoi\.geojson; fix: pass an existing vector file",
        message="AOI file not found: /nonexistent/aoi.geojson; fix: pass an existing vector file or a lon/lat bbox",
    ),
    BadInput(
        name="aoi-outside-data",
        description="AOI far away from the collection (bbox 0,0,1,1)",
        stage="cube",
        prepare=cube_of(tiny_stac, "0,0,1,1"),
        expected_exit=2,
        expected_message_regex=r"AOI \[0\.0+, 0\.0+, 1\.0+, 1\.0+\] lies outside collection sentinel-2-l2a "
        r"\(extent \[15\.\d+, 46\.\d+",
        message="AOI [0.00000, 0.00000, 1.00000, 1.00000] lies outside collection sentinel-2-l2a "
        "(extent [15.25920, 46.19472, 15.27585, 46.20628]); fix: choose an AOI inside the data, or another STAC source",
    ),
    BadInput(
        name="unknown-collection",
        description="collection id the catalog does not hold (`--collection landsat`)",
        stage="search",
        prepare=search_of("--collection", "landsat"),
        expected_exit=2,
        expected_message_regex=r"collection 'landsat' not found in .*catalog\.json; fix: pass the id of a collection",
        message="collection 'landsat' not found in …/catalog.json; "
        "fix: pass the id of a collection of that catalog with --collection",
    ),
    BadInput(
        name="zero-scenes",
        description="date range without acquisitions (2019-01-01 to 2019-03-01)",
        stage="search",
        prepare=search_of(dates=("--start=2019-01-01", "--end=2019-03-01")),
        expected_exit=3,
        expected_message_regex=r"no sentinel-2-l2a scenes intersect AOI \[.*\] between 2019-01-01 and 2019-03-01; "
        r"fix: widen the date range",
        message="no sentinel-2-l2a scenes intersect AOI [15.25959, 46.19501, 15.26859, 46.20601] between 2019-01-01 "
        "and 2019-03-01; fix: widen the date range, raise --max-cloud, or check the collection id",
    ),
    BadInput(
        name="all-frames-below-min-valid",
        description="every frame below `--min-valid` (only SCL 4 counts as valid, `--frame-filter aoi`)",
        stage="features",
        prepare=features_of(lambda w, _f: w.cube, "--valid-scl", "4", "--frame-filter", "aoi"),
        expected_exit=3,
        expected_message_regex=r"every one of 6 frames is below --min-valid 0\.99 \(best 0\.\d+ on \d{4}-\d\d-\d\d\); "
        r"fix: lower --min-valid \(e\.g\. 0\.\d+\)",
        message="every one of 6 frames is below --min-valid 0.99 (best 0.6909 on 2023-08-11); "
        "fix: lower --min-valid (e.g. 0.69) or extend the time range",
    ),
    BadInput(
        name="no-usable-observation",
        description="no pixel ever valid (only SCL 1, saturated, counts as valid)",
        stage="features",
        prepare=features_of(lambda w, _f: w.cube, "--valid-scl", "1"),
        expected_exit=3,
        expected_message_regex=r"no pixel of the AOI has a usable observation in any of 6 frames \(SCL classes \[1\], "
        r"every band present\); fix: extend the time range or widen --valid-scl",
        message="no pixel of the AOI has a usable observation in any of 6 frames (SCL classes [1], every band "
        "present); fix: extend the time range or widen --valid-scl",
    ),
    BadInput(
        name="labels-crs-without-prj",
        description="labels in EPSG:3857 as a Shapefile without its .prj",
        stage="chips",
        prepare=chips_with(shapefile_without_prj),
        expected_exit=2,
        expected_message_regex=r"labels .*labels-3857\.shp declare no CRS \(a Shapefile without \.prj\?\); "
        r"fix: add the \.prj file",
        message="labels …/labels-3857.shp declare no CRS (a Shapefile without .prj?); "
        "fix: add the .prj file or save the labels with their CRS (e.g. as GeoPackage)",
    ),
    BadInput(
        name="unknown-class-codes",
        description="labels with class codes outside the scheme (41, 77)",
        stage="chips",
        prepare=chips_with(unknown_codes),
        expected_exit=2,
        expected_message_regex=r"use class codes not in the class scheme: 41, 77; fix: map them with --class-map",
        message="labels …/labels.gpkg use class codes not in the class scheme: 41, 77; "
        "fix: map them with --class-map FILE (source: target) or pass a matching scheme with --classes",
    ),
    BadInput(
        name="empty-labels",
        description="labels GeoPackage with zero features",
        stage="chips",
        prepare=chips_with(no_labels),
        expected_exit=2,
        expected_message_regex=r"labels .*labels\.gpkg hold no features; fix: pass a file with labelled polygons",
        message="labels …/labels.gpkg hold no features; fix: pass a file with labelled polygons",
    ),
    BadInput(
        name="labels-elsewhere",
        description="labels that do not overlap the features (a 500 m square at 11.4°E 0.9°N)",
        stage="chips",
        prepare=chips_with(labels_far_away),
        expected_exit=2,
        expected_message_regex=r"labels .* \(extent \[.*\]\) do not overlap the features \(extent \[15\.\d+",
        message="labels …/labels.gpkg (extent [11.40722, 0.90294, 11.41171, 0.90746]) do not overlap the features "
        "(extent [15.25946, 46.19492, 15.26872, 46.20610]); "
        "fix: use labels of the same area, or features built for the labels' AOI",
    ),
    BadInput(
        name="invalid-geometry-repaired",
        description="labels with a self-intersecting (bow-tie) polygon among valid ones",
        stage="chips",
        prepare=chips_with(labels_with_a_bowtie),
        expected_exit=0,
        expected_message_regex=r"WARNING .*repaired invalid geometries of features \['1'\]",
        message="succeeds; logs WARNING labels: repaired invalid geometries of features ['1']; "
        "dropped empty or unusable features []",
    ),
    BadInput(
        name="invalid-geometry-unusable",
        description="labels whose only polygon is a zero-area sliver (repairs to a line)",
        stage="chips",
        prepare=chips_with(only_a_sliver),
        expected_exit=2,
        expected_message_regex=r"labels .*labels\.gpkg hold no usable polygons \(1 empty or invalid\); "
        r"fix: check the geometries",
        message="labels …/labels.gpkg hold no usable polygons (1 empty or invalid); "
        "fix: check the geometries (points and lines are not labels)",
    ),
    BadInput(
        name="corrupted-cog",
        description="catalog whose red-band COG of one acquisition is truncated to half",
        stage="cube",
        prepare=cube_of(catalog_with_a_truncated_cog, "aoi-train.geojson"),
        expected_exit=2,
        expected_message_regex=r"cannot read asset \w+ of S2A_33TWM_20230103_0_L2A .*; fix: ",
        message="cannot read asset red of S2A_33TWM_20230103_0_L2A (…/B04.tif): Read failed. …; "
        "fix: re-fetch or remove the damaged asset, or narrow --start/--end to skip that acquisition",
    ),
    BadInput(
        name="features-model-mismatch",
        description="model trained on one date fewer than the features hold",
        stage="predict",
        prepare=predict_with(model_with_fewer_dates),
        expected_exit=2,
        expected_message_regex=r"features do not match the model inputs: the model takes 22 dates, "
        r"the features have 23; fix: compute the features with the same",
        message="features do not match the model inputs: the model takes 22 dates, the features have 23; "
        "fix: compute the features with the same `deep-lulc features` settings (--step-days, period length) "
        "as the training features, or use a model trained on these",
    ),
    BadInput(
        name="model-weights-pickle",
        description="model.safetensors replaced by a pickle",
        stage="predict",
        prepare=predict_with(model_weights_pickled),
        expected_exit=2,
        expected_message_regex=r"model weights .*model\.safetensors are a pickle; refusing to load them",
        message="model weights …/model.safetensors are a pickle; refusing to load them "
        "(Error while deserializing: header too large); "
        "fix: use the model.safetensors written by `deep-lulc train` (pickled checkpoints are never loaded)",
    ),
    BadInput(
        name="stac-api-5xx-then-recovery",
        description="STAC API answering 503 twice, then normally",
        stage="search",
        prepare=search_through_flaky_api(failures=2),
        expected_exit=0,
        expected_message_regex=r"6 scenes written to ",
        message="succeeds after retries (DEEP_LULC_HTTP_RETRIES, exponential backoff); no error line",
    ),
    BadInput(
        name="stac-api-always-failing",
        description="STAC API answering 503 to every request",
        stage="search",
        prepare=search_through_flaky_api(failures=-1),
        expected_exit=75,
        expected_message_regex=r"STAC (source|API) http://127\.0\.0\.1:\d+ (did not answer|failed) after retries.*"
        r"; fix: retry later",
        message="STAC source http://127.0.0.1:35439 did not answer after retries (RetryError); "
        "fix: retry later; check the URL and the service status",
    ),
    BadInput(
        name="s3-read-access-denied",
        description="s3:// input with credentials that may not read it (IAM-enforcing S3)",
        stage="features",
        prepare=s3_read_denied,
        expected_exit=2,
        expected_message_regex=r"access denied reading STAC document s3://locked/cube/catalog\.json; "
        r"fix: check the credentials",
        message="access denied reading STAC document s3://locked/cube/catalog.json; "
        "fix: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the object's permissions",
    ),
    BadInput(
        name="s3-write-access-denied",
        description="s3:// --out with credentials that may not write there",
        stage="search",
        prepare=s3_write_denied,
        expected_exit=2,
        expected_message_regex=r"(access|permission) denied .*s3://locked/search",
        message="permission denied while writing s3://locked/search/items.json; "
        "fix: check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or choose a writable location",
    ),
    BadInput(
        name="no-space-small-output",
        description="full output filesystem, item collection (`search --out`)",
        stage="search",
        prepare=search_onto_full_disk,
        expected_exit=2,
        expected_message_regex=r"no space left on the device while writing .*items\.json; "
        r"fix: free space or choose another --out",
        message="no space left on the device while writing …/items.json; fix: free space or choose another --out",
    ),
    BadInput(
        name="no-space-catalog-output",
        description="full output filesystem, catalog with a Zarr store (`features --out`)",
        stage="features",
        prepare=features_onto_full_disk,
        expected_exit=2,
        expected_message_regex=r"no space left on the device while .*; fix: free space or choose another --out",
        message="no space left on the device while writing the output for …/features; "
        "fix: free space or choose another --out",
    ),
    BadInput(
        name="features-chunk-altered",
        description="features whose first Zarr chunk has one byte changed in place (same size, still decodes)",
        stage="predict",
        prepare=predict_on(features_with_an_altered_chunk),
        expected_exit=2,
        expected_message_regex=r"Zarr store \S+ is damaged: object features/0\.0\.0\.0 differs from the checksum "
        r"its manifest recorded; fix: ",
        message="Zarr store …/features.zarr is damaged: object features/0.0.0.0 differs from the checksum its "
        "manifest recorded; fix: re-run the stage that wrote the store, or copy the whole store again",
    ),
    BadInput(
        name="model-config-edited",
        description="model config with two class values swapped, the model item not updated",
        stage="predict",
        prepare=predict_with(model_with_swapped_legend),
        expected_exit=2,
        expected_message_regex=r"model config \S+model-config\.json is not the file `deep-lulc train` wrote",
        message="model config …/model-config.json is not the file `deep-lulc train` wrote: 8809 bytes where the "
        "model item records 11592; fix: copy the whole model folder again, or retrain with `deep-lulc train`",
    ),
    BadInput(
        name="aoi-across-antimeridian",
        description="AOI bbox that crosses the antimeridian (179.5 E to 179.5 W)",
        stage="cube",
        prepare=cube_of(tiny_stac, "179.5,46.2,-179.5,46.4"),
        expected_exit=2,
        expected_message_regex=r"AOI bbox '179\.5,46\.2,-179\.5,46\.4' crosses the antimeridian; fix: split the AOI"
        r"|crosses the antimeridian \(west 179\.5 > east -179\.5\); fix: split the AOI at 180",
        message="AOI bbox '179.5,46.2,-179.5,46.4' crosses the antimeridian (west 179.5 > east -179.5); "
        "fix: split the AOI at 180 degrees and run each side on its own …",
    ),
    BadInput(
        name="grid-over-max-pixels",
        description="`--resolution 0.001` (degrees typed for metres): a grid of 10^12 pixels",
        stage="cube",
        prepare=cube_of(tiny_stac, "aoi-train.geojson", "--resolution", "0.001"),
        expected_exit=2,
        expected_message_regex=r"the grid would be [\d,]+ x [\d,]+ px \([\d,]+ pixels\), over --max-pixels "
        r"250,000,000; fix: check --resolution",
        message="the grid would be 690,008 x 1,220,005 px (…), over --max-pixels 250,000,000; fix: check "
        "--resolution (metres, not degrees), narrow the AOI, plan tiles with --tiles, or raise --max-pixels …",
    ),
    BadInput(
        name="asset-href-outside-catalog",
        description="catalog whose asset href climbs out of it (`../../../../etc/passwd`)",
        stage="cube",
        prepare=cube_of(catalog_reading_outside, "aoi-train.geojson"),
        expected_exit=2,
        expected_message_regex=r"asset red of item S2A_33TWM_20230103_0_L2A: /etc/passwd is outside its catalog's "
        r"folder \S+; fix: move the file under the catalog's folder, or allow its folder with --allow-local-root",
        message="asset red of item S2A_33TWM_20230103_0_L2A: /etc/passwd is outside its catalog's folder …; "
        "fix: move the file under the catalog's folder, or allow its folder with --allow-local-root DIR …",
    ),
    BadInput(
        name="usage-error",
        description="an option the command does not have",
        stage="cube",
        prepare=usage_error,
        expected_exit=2,
        expected_message_regex=r"No such option: --no-such-option; fix: see `deep-lulc cube --help`",
        message="No such option: --no-such-option; fix: see `deep-lulc cube --help`",
    ),
    BadInput(
        name="sample-series-catalog",
        description="a change series' catalog (one map per pair) as `sample --map`",
        stage="sample",
        prepare=sample_of_a_series,
        expected_exit=2,
        expected_message_regex=r"holds 2 change maps \(change-prediction-2022-to-prediction-2023, "
        r"change-prediction-2023-to-prediction-2024\); fix: pass the item of the one you mean",
        message="…/change/catalog.json holds 2 change maps (change-prediction-2022-to-prediction-2023, "
        "change-prediction-2023-to-prediction-2024); fix: pass the item of the one you mean, e.g. …/"
        "change-prediction-2022-to-prediction-2023.json",
    ),
    BadInput(
        name="sample-point-outside-map",
        description="labelled sample with a point outside the map (`area --sample`)",
        stage="area",
        prepare=area_of(point_moved_off_the_map),
        expected_exit=2,
        expected_message_regex=r"1 sample point\(s\) lie outside the --map prediction-2023 \(sample_id 1\); fix: "
        r"estimate with the map the sample was drawn from",
        message="1 sample point(s) lie outside the --map prediction-2023 (sample_id 1); fix: estimate with the map "
        "the sample was drawn from (or draw a new sample with `deep-lulc sample`)",
    ),
    BadInput(
        name="sample-reference-not-in-scheme",
        description="reference class the map's scheme does not have (`area --sample`)",
        stage="area",
        prepare=area_of(reference_not_in_scheme),
        expected_exit=2,
        expected_message_regex=r"reference class 42 of sample_id 1 \('reference'\) is not in the map's class scheme; "
        r"fix: label with one of 1 CultivatedLand",
        message="reference class 42 of sample_id 1 ('reference') is not in the map's class scheme; fix: label with "
        "one of 1 CultivatedLand, 2 Forest, …",
    ),
    BadInput(
        name="sample-stratum-unlabelled",
        description="a stratum of the map without labelled points (`area --sample`)",
        stage="area",
        prepare=area_of(water_left_unlabelled),
        expected_exit=2,
        expected_message_regex=r"stratum Water \(0 labelled\) has fewer than two labelled points; fix: label at "
        r"least two points of every stratum",
        message="stratum Water (0 labelled) has fewer than two labelled points; fix: label at least two points of "
        "every stratum …",
    ),
    BadInput(
        name="sample-from-another-map",
        description="sample drawn from another map than `--map` (`area`)",
        stage="area",
        prepare=area_of(as_labelled, other_map=True),
        expected_exit=2,
        expected_message_regex=r"the sample was drawn from another map: .*; fix: estimate with the map the sample "
        r"was drawn from",
        message="the sample was drawn from another map: 3 point(s) record a map_class the --map does not hold "
        "there (…); fix: estimate with the map the sample was drawn from …",
    ),
    BadInput(
        name="change-one-map",
        description="a series of one map (`change MAP`)",
        stage="change",
        prepare=change_series(2023),
        expected_exit=2,
        expected_message_regex=r"one map given \(.*catalog\.json\): a change needs two; "
        r"fix: pass --before A --after B, or two or more maps in time order",
        message="one map given (…/catalog.json): a change needs two; fix: pass --before A --after B, or two or "
        "more maps in time order as arguments (A B C ...)",
    ),
    BadInput(
        name="change-series-out-of-order",
        description="a series of maps not in time order (`change 2023 2025 2024`)",
        stage="change",
        prepare=change_series(2023, 2025, 2024),
        expected_exit=2,
        expected_message_regex=r"the maps are not in time order: map 3 \(prediction-2024\) starts .*, not after map 2 "
        r"\(prediction-2025\)",
        message="the maps are not in time order: map 3 (prediction-2024) starts 2024-01-01T00:00:00Z, not after "
        "map 2 (prediction-2025) (…); fix: pass each period's map once, earliest first",
    ),
    BadInput(
        name="run-config-unknown-key",
        description="run config with a key the pipeline has no parameter for (`chips: {colour: red}`)",
        stage="run",
        prepare=run_config("chips: {colour: red}\n"),
        expected_exit=2,
        expected_message_regex=r"run config .*run\.yaml: unknown key chips\.colour; fix: see the commented example",
        message="run config …/run.yaml: unknown key chips.colour; "
        "fix: see the commented example configs (configs/*.yaml) and docs/cli.md#deep-lulc-run",
    ),
    BadInput(
        name="run-config-bad-value",
        description="run config with a value of the wrong type (`model: {epochs: many}`)",
        stage="run",
        prepare=run_config("model: {epochs: many}\n"),
        expected_exit=2,
        expected_message_regex=r"run config .*: model\.epochs: Input should be a valid integer",
        message="run config …/run.yaml: model.epochs: Input should be a valid integer, unable to parse string as an "
        "integer; fix: see the commented example configs (configs/*.yaml) and docs/cli.md#deep-lulc-run",
    ),
    BadInput(
        name="run-step-bad-input",
        description="run config naming a training AOI file that does not exist: the step's own line, inside the run's",
        stage="run",
        prepare=run_config("train: {aoi: /nonexistent/aoi.geojson, start: 2024-01-01, end: 2024-12-31, labels: x}\n"),
        expected_exit=2,
        expected_message_regex=r"step cube-train \(cube\) exited 2: deep-lulc cube: error: AOI file not found: "
        r"/nonexistent/aoi\.geojson.*; fix: fix what it names, then run the same command again",
        message="step cube-train (cube) exited 2: deep-lulc cube: error: AOI file not found: /nonexistent/aoi.geojson; "
        "fix: …; fix: fix what it names, then run the same command again: finished steps are reused",
    ),
    *(
        BadInput(
            name=f"no-space-{stage}-output",
            description=f"full output filesystem, {what} (`{stage} --out`)",
            stage=stage,
            prepare=onto_full_disk(stage),
            expected_exit=2,
            expected_message_regex=r"no space left on the device .*; fix: free space or choose another --out",
            message="no space left on the device (… No space left on device …); "
            "fix: free space or choose another --out",
        )
        for stage, what in (
            ("chips", "training chips"),
            ("train", "a model (its first checkpoint)"),
            ("predict", "a class map"),
        )
    ),
]


def markdown_table() -> str:
    """docs/errors.md's table of bad inputs, one row per case: `| bad input | stage | exit | message |`."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| bad input | stage | exit | message |", "|---|---|---|---|"]
    for case in CASES:
        bad_input = f"{cell(case.description)} (`{case.name}`)"
        lines.append(f"| {bad_input} | `{case.stage}` | {case.expected_exit} | {cell(case.message)} |")
    return "\n".join(lines) + "\n"


# -- running them ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    invocation: Invocation | None
    completed: subprocess.CompletedProcess[str] | None
    unavailable: str | None
    seconds: float


@pytest.fixture(scope="module")
def observed(
    tiny_catalog: Path,
    tiny_cube: str,
    tiny_features: str,
    tiny_chips: str,
    tiny_model: str,
    stac_api: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Observed]]:
    """Set every row up, then run all their commands concurrently; yields what each one did."""
    with ExitStack() as stack:
        workspace = Workspace(
            catalog=tiny_catalog,
            cube=tiny_cube,
            features=tiny_features,
            chips=tiny_chips,
            model=tiny_model,
            stac_api=stac_api,
            root=tmp_path_factory.mktemp("bad-inputs"),
            stack=stack,
        )
        invocations: dict[str, Invocation | str] = {}
        for case in CASES:
            try:
                invocations[case.name] = case.prepare(workspace, workspace.folder(case.name))
            except UnavailableError as exc:
                invocations[case.name] = str(exc)

        def run(case: BadInput) -> Observed:
            invocation = invocations[case.name]
            if isinstance(invocation, str):
                return Observed(None, None, invocation, 0.0)
            started = time.perf_counter()
            completed = subprocess.run(
                [str(BIN / "deep-lulc"), case.stage, *invocation.args],
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
                env=cli_env(**invocation.extra_env),
            )
            return Observed(invocation, completed, None, time.perf_counter() - started)

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            results = dict(zip([c.name for c in CASES], pool.map(run, CASES), strict=True))
        print(f"{len(CASES)} bad-input commands in {time.perf_counter() - started:.1f} s on {WORKERS} workers")
        yield results


def _param(case: BadInput) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"product defect: {case.bug}")] if case.bug else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input(case: BadInput, observed: dict[str, Observed]) -> None:
    result = observed[case.name]
    if result.unavailable is not None:
        pytest.skip(result.unavailable)
    assert result.invocation is not None
    assert result.completed is not None
    completed, invocation = result.completed, result.invocation
    print(f"{case.name}: exit {completed.returncode} in {result.seconds:.1f} s\n{completed.stderr}")
    assert "Traceback" not in completed.stderr
    own_lines = [line for line in completed.stderr.splitlines() if line.startswith("deep-lulc ")]
    if case.expected_exit == 0:
        assert completed.returncode == 0, completed.stderr
        assert own_lines == [], "a stage that succeeds prints no error line"
        assert re.search(case.expected_message_regex, completed.stderr), completed.stderr
        lines = completed.stdout.splitlines()
        assert len(lines) == 1, completed.stdout
        published = json.loads(lines[0])["catalog"]
        assert Path(published).is_file()
    else:
        assert completed.returncode == case.expected_exit, completed.stderr
        assert len(own_lines) == 1, f"expected one 'deep-lulc {case.stage}: ...' line on stderr:\n{completed.stderr}"
        line = own_lines[0]
        assert line.startswith(f"deep-lulc {case.stage}: error: "), line
        assert "; fix: " in line, line
        assert re.search(case.expected_message_regex, line), line
        assert completed.stdout == ""
        if invocation.out is not None:
            out = invocation.out
            leftovers = sorted(p.name for p in out.iterdir()) if out.is_dir() else ([out.name] if out.exists() else [])
            assert leftovers == [], f"{out} holds {leftovers} after a failed run"
    if invocation.after is not None:
        invocation.after()


def test_readme_table_matches_cases() -> None:
    """Every case has its row in the bad-input table of docs/errors.md, with the same stage and exit code."""
    doc = (PROJECT_ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    rows = [
        [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        for line in doc.splitlines()
        if line.startswith("|")
    ]
    missing = []
    for case in CASES:
        matching = [
            row
            for row in rows
            if len(row) >= 4
            and f"(`{case.name}`)" in row[0]
            and row[1] == f"`{case.stage}`"
            and row[2] == str(case.expected_exit)
        ]
        if not matching:
            missing.append(case.name)
    assert missing == [], (
        f"docs/errors.md lacks bad-input rows for {missing}; paste the output of markdown_table() "
        "(tests/contract/test_bad_inputs.py) over its table"
    )


def test_case_names_are_unique_and_cover_the_contract() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9-]+", name) for name in names)
    assert {case.expected_exit for case in CASES} == {0, 2, 3, 75}
    assert len(CASES) >= 15

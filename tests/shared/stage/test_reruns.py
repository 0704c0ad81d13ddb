"""Reruns and interruptions: a repeated stage is a no-op, a killed one leaves nothing dangling, secrets never
leak into what stages write or print, and concurrent tile predictions into one prefix lose nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pystac
import pytest

from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesParams

from ...conftest import BIN, cli_env, validate_tree


def deep_lulc(*arguments: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "deep-lulc"), *arguments], capture_output=True, text=True, env=cli_env(**env), check=False
    )


def complete_or_absent(output: Path) -> None:
    """Either no catalog.json, or one whose every link and asset resolves."""
    catalog = output / "catalog.json"
    if not catalog.exists():
        return
    validate_tree(catalog)
    for item in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True):
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href() or "").exists(), asset.href


@pytest.mark.slow
def test_rerun_is_a_no_op_with_the_same_line_unless_overwrite(tiny_cube: str, tmp_path: Path) -> None:
    out = tmp_path / "features"
    first = deep_lulc("features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "64")
    assert first.returncode == 0, first.stderr
    catalog = out / "catalog.json"
    written = catalog.stat().st_mtime_ns
    again = deep_lulc("features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "64")
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "nothing to do" in again.stderr
    assert catalog.stat().st_mtime_ns == written
    changed = deep_lulc("features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "32")
    assert changed.returncode == 0, changed.stderr
    assert "nothing to do" not in changed.stderr
    assert json.loads((out / "params.json").read_text())["params"]["chunk_size"] == 32
    forced = deep_lulc("features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "32", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert "nothing to do" not in forced.stderr
    assert catalog.stat().st_mtime_ns > written


def test_a_deleted_catalog_makes_the_rerun_work_again(tiny_cube: str, tmp_path: Path) -> None:
    params = FeaturesParams(chunk_size=64)
    first = features.run(inputs={"cube": tiny_cube}, output=str(tmp_path), params=params)
    (tmp_path / "catalog.json").unlink()
    second = features.run(inputs={"cube": tiny_cube}, output=str(tmp_path), params=params)
    assert second.to_json_line() == first.to_json_line()
    assert validate_tree(tmp_path / "catalog.json") == 3


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.5, 3.0, 4.5, 6.0])
def test_a_killed_stage_leaves_no_dangling_catalog_and_a_rerun_completes(
    tiny_cube: str, tmp_path: Path, after_s: float
) -> None:
    out = tmp_path / "features"
    command = [str(BIN / "deep-lulc"), "features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "32"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    time.sleep(after_s)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    complete_or_absent(out)
    rerun = deep_lulc("features", "--cube", tiny_cube, "--out", str(out), "--chunk-size", "32")
    assert rerun.returncode == 0, rerun.stderr
    assert validate_tree(out / "catalog.json") == 3
    complete_or_absent(out)


SECRET_KEY = "fake-secret-Zx81qPq"
SECRET_TOKEN = "tok-5531-private"


def test_no_secret_reaches_logs_items_or_params(
    tiny_cube: str, stac_api: str, tiny_catalog: Path, s3_bucket: str, tmp_path: Path
) -> None:
    # a token in the STAC API URL (query and user info) and object-storage keys in the environment
    host = stac_api.removeprefix("http://")
    api = f"http://user:{SECRET_TOKEN}@{host}?token={SECRET_TOKEN}"
    env = {"AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_ACCESS_KEY_ID": "AKIAFAKE"}
    searched = deep_lulc(
        "search",
        "--stac",
        api,
        "--aoi",
        str(tiny_catalog / "aoi-train.geojson"),
        "--start",
        "2023-01-01",
        "--end",
        "2023-03-31",
        "--out",
        str(tmp_path / "search"),
        "--debug",
        **env,
    )
    remote = f"s3://{s3_bucket}/features"
    featured = deep_lulc("features", "--cube", tiny_cube, "--out", remote, "--chunk-size", "64", "--debug", **env)
    failed = deep_lulc(
        "features",
        "--cube",
        f"s3://{s3_bucket}/missing/catalog.json?X-Amz-Signature={SECRET_TOKEN}",
        "--out",
        str(tmp_path / "nothing"),
        **env,
    )
    assert searched.returncode == 0, searched.stderr
    assert featured.returncode == 0, featured.stderr
    assert failed.returncode == 2
    texts = [p.stdout + p.stderr for p in (searched, featured, failed)]
    texts.append((tmp_path / "search").read_text())  # search writes an ItemCollection file
    root = read_stac(f"{remote}/catalog.json")
    texts += [json.dumps(item.to_dict()) for item in items_of(root)]
    from deep_lulc.shared.io.storage import read_bytes

    texts += [read_bytes(f"{remote}/{name}").decode() for name in ("params.json", "result.json", "catalog.json")]
    for text in texts:
        assert SECRET_TOKEN not in text
        assert SECRET_KEY not in text
    assert any(host in t for t in texts), "the API URL itself is still recorded, without its secrets"


@pytest.mark.slow
def test_concurrent_tile_predictions_into_one_prefix_lose_nothing(
    tiny_model: str, tiny_features: str, tmp_path: Path
) -> None:
    tiles_file = tmp_path / "tiles.json"
    planned = deep_lulc(
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
    )
    assert planned.returncode == 0, planned.stderr
    ids = [tile["id"] for tile in json.loads(tiles_file.read_text())]
    assert len(ids) >= 2
    processes = [
        subprocess.Popen(
            [
                str(BIN / "deep-lulc"),
                "predict",
                "--model",
                tiny_model,
                "--features",
                tiny_features,
                "--out",
                str(tmp_path / "tiles" / tile),
                "--tile",
                tile,
                "--tiles",
                str(tiles_file),
                "--device",
                "cpu",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(),
        )
        for tile in ids
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read() if process.stderr else ""
    catalogs = [str(tmp_path / "tiles" / tile / "catalog.json") for tile in ids]
    for catalog in catalogs:
        assert validate_tree(catalog) == 3
    merged = deep_lulc("merge", *catalogs, "--out", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["tiles"] == len(ids)
    assert validate_tree(tmp_path / "merged" / "catalog.json") == 3

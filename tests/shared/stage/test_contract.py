"""The stage contract through the real CLI: one JSON line, --outputs-dir, exit codes, atomic writes, s3."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fsspec
import pystac
import pytest
import typer
from typer.testing import CliRunner

from deep_lulc.shared.errors import BadInputError, NothingToDoError, TransientError
from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.shared.io.storage import redact
from deep_lulc.shared.stage.contract import StageParams, StageResult, typed_inputs
from deep_lulc.shared.stage.runtime import execute
from deep_lulc.stages.features.params import FeaturesInputs
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams

from ...conftest import BIN, TINY, cli_env, validate_tree

SMALL_ARGS = ["--size", "128", "--dates", "4", "--seed", "5"]


def deep_lulc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "deep-lulc"), *args], capture_output=True, text=True, check=False, env=cli_env(**env), timeout=300
    )


def assert_consistent(out: Path) -> bool:
    """True when a complete catalog is published; fails if a published catalog points at missing files."""
    marker = out / "catalog.json"
    if not marker.exists():
        return False
    catalog = pystac.Catalog.from_file(str(marker))
    for _, _, items in catalog.walk():
        for item in items:
            for asset in item.assets.values():
                path = Path(asset.get_absolute_href() or "")
                assert path.is_file(), f"published catalog points at missing {path}"
    return True


def test_cli_prints_one_json_line_and_fills_outputs_dir(tmp_path: Path) -> None:
    out, outputs = tmp_path / "out", tmp_path / "argo-outputs"
    completed = deep_lulc("synth", "--out", str(out), *SMALL_ARGS, "--outputs-dir", str(outputs))
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["stage"] == "synth"
    assert result["version"]
    assert result["catalog"] == str(out / "catalog.json")
    assert len(result["items"]) == 8
    assert json.loads((outputs / "result.json").read_text()) == result
    assert (outputs / "catalog").read_text() == result["catalog"]
    assert json.loads((outputs / "items").read_text()) == result["items"]
    params = json.loads((out / "params.json").read_text())
    assert params["stage"] == "synth"
    assert params["params"] == {
        "seed": 5,
        "size": 128,
        "dates": 4,
        "year": 2023,
        "asset_style": "earth-search",
    }
    assert "INFO" in completed.stderr  # logs go to stderr
    assert validate_tree(out / "catalog.json") == 1 + 2 + 8 + 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "200"], r"invalid parameters: --size: .*multiple of 16"),
        (["--dates", "1"], r"--dates: Input should be greater than or equal to 4"),
        (["--asset-style", "sentinel-hub"], r"--asset-style: Input should be 'earth-search' or 'planetary-computer'"),
    ],
)
def test_bad_parameters_exit_2_with_one_line_and_no_output(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out"
    completed = deep_lulc("synth", "--out", str(out), *args)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("deep-lulc synth: error: ")
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists(), "params are validated before any I/O"


def test_unsupported_output_scheme_is_bad_input(tmp_path: Path) -> None:
    completed = deep_lulc("synth", "--out", "ftp://example.org/out", *SMALL_ARGS)
    assert completed.returncode == 2
    assert "unsupported href scheme 'ftp'" in completed.stderr


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadInputError("input not found: x", fix="check it"), 2),
        (NothingToDoError("no scenes", fix="widen the dates"), 3),
        (TransientError("timeout", fix="retry"), 75),
        (RuntimeError("bug"), 1),
    ],
)
def test_exit_codes(error: Exception, code: int) -> None:
    app = typer.Typer()

    @app.command()
    def fail() -> None:
        def call() -> StageResult:
            raise error

        execute("probe", call, debug=False, outputs_dir=None)

    result = CliRunner().invoke(app, [])
    assert result.exit_code == code
    assert "Traceback" not in result.output
    assert "deep-lulc probe:" in result.output
    assert "fix:" in result.output


@pytest.mark.slow
def test_killed_stage_never_leaves_a_catalog_pointing_at_missing_files(tmp_path: Path) -> None:
    args = ["--size", "256", "--dates", "8", "--seed", "2"]
    for delay in (0.5, 1.5, 2.5, 3.5):
        out = tmp_path / f"killed-{delay}"
        process = subprocess.Popen(
            [str(BIN / "deep-lulc"), "synth", "--out", str(out), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_consistent(out)
    # A rerun over the debris completes.
    completed = deep_lulc("synth", "--out", str(tmp_path / "killed-0.5"), *args)
    assert completed.returncode == 0, completed.stderr
    assert assert_consistent(tmp_path / "killed-0.5")


def test_crash_during_publication_unpublishes_the_old_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    synth.run(inputs={}, output=str(out), params=TINY)
    assert assert_consistent(out)
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str | Path, dst: str | Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(5, "simulated I/O failure mid-publication")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)  # publish moves files with os.replace
    with pytest.raises(TransientError, match="storage error while writing the output"):
        synth.run(inputs={}, output=str(out), params=TINY.model_copy(update={"seed": 4}))
    assert not (out / "catalog.json").exists(), "a half-replaced output must not keep a catalog"
    assert not list(out.glob(".deep-lulc-staging-*")), "staging is cleaned up"
    monkeypatch.undo()
    synth.run(inputs={}, output=str(out), params=TINY)
    assert assert_consistent(out)


def test_s3_output_on_a_loopback_s3_server(s3_bucket: str) -> None:
    prefix = f"s3://{s3_bucket}/runs/synth"
    result = synth.run(inputs={}, output=prefix, params=SynthParams(seed=6, size=128, dates=4))
    assert result.catalog == f"{prefix}/catalog.json"
    catalog = read_stac(result.catalog)
    items = items_of(catalog)
    assert len(items) == 8 + 2
    fs = fsspec.filesystem("s3", client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    for item in items:
        for asset in item.assets.values():
            href = asset.get_absolute_href() or ""
            assert href.startswith(f"s3://{s3_bucket}/runs/synth/")
            assert fs.exists(href), href
    assert fs.exists(f"{s3_bucket}/runs/synth/params.json")
    assert not fs.exists(f"{s3_bucket}/runs/synth/.deep-lulc-staging")


def test_cli_writes_to_s3(s3_bucket: str) -> None:
    completed = deep_lulc("synth", "--out", f"s3://{s3_bucket}/cli", *SMALL_ARGS)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["catalog"] == f"s3://{s3_bucket}/cli/catalog.json"


def test_stac_reads_over_http_with_relative_links(tiny_catalog: Path) -> None:
    handler = partial(SimpleHTTPRequestHandler, directory=str(tiny_catalog))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        items = items_of(read_stac(f"{base}/catalog.json"))
        assert len(items) == 12 + 2
        assert all((item.get_self_href() or "").startswith(base) for item in items)
        with pytest.raises(BadInputError, match=r"STAC document not found: http://127\.0\.0\.1:\d+/nope\.json"):
            read_stac(f"{base}/nope.json")
    finally:
        server.shutdown()


def test_missing_local_input_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"STAC document not found: .*fix: check the path"):
        read_stac(str(tmp_path / "absent" / "catalog.json"))
    (tmp_path / "plain.json").write_text('{"hello": 1}')
    with pytest.raises(BadInputError, match="not a STAC object"):
        read_stac(str(tmp_path / "plain.json"))


def test_secrets_are_redacted_from_hrefs() -> None:
    assert redact("https://user:pw@host.example/a.json?sig=SECRET") == "https://host.example/a.json?<redacted>"
    assert redact("s3://bucket/key.json") == "s3://bucket/key.json"
    assert redact("/local/path.json") == "/local/path.json"


_SEEN: list[object] = []


@typed_inputs
def _features_like_run(*, inputs: FeaturesInputs, output: str, params: StageParams) -> StageResult:
    _SEEN.append(inputs)
    return StageResult(stage="toy", catalog=output, items=())


def test_run_receives_its_typed_inputs_and_a_mapping_is_validated_like_the_command_line() -> None:
    """Tests and the demo pass mappings; `run` still gets the model, and a missing or misspelt input is the
    same one-line bad input the command line gives."""
    _features_like_run(inputs={"cube": "c/catalog.json"}, output="o", params=StageParams())
    assert [FeaturesInputs(cube="c/catalog.json")] == _SEEN
    with pytest.raises(BadInputError, match=r"invalid inputs: --cube: Field required"):
        _features_like_run(inputs={}, output="o", params=StageParams())
    with pytest.raises(BadInputError, match=r"invalid inputs: --cubes: Extra inputs are not permitted"):
        _features_like_run(inputs={"cube": "c", "cubes": "d"}, output="o", params=StageParams())

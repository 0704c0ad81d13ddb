"""`deep-lulc run`: the config and argo/pipeline.yaml stay in step, bad configs are one line, steps run side by side
within --jobs, and a rerun after a failure redoes only the steps that did not finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.stages.run import stage as run_stage
from deep_lulc.stages.run.config import (
    ARGO_FIELDS,
    ARGO_PARAMETERS,
    DEFAULTS_DIFFER,
    NOT_IN_CONFIG,
    RunConfig,
    argo_value,
    load_config,
)
from deep_lulc.stages.run.params import RunInputs, RunParams
from deep_lulc.stages.run.runner import Runner
from deep_lulc.stages.run.steps import manifest, packaged_config

from ..conftest import BIN, PROJECT_ROOT, SHARED, needs_shared, validate_tree

ARGO = PROJECT_ROOT / "argo"
CONFIGS = PROJECT_ROOT / "configs"


def pipeline_parameters() -> dict[str, str]:
    document = yaml.safe_load((ARGO / "pipeline.yaml").read_text())
    return {p["name"]: str(p.get("value", "")) for p in document["spec"]["arguments"]["parameters"]}


def config_keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf key of the config model (dotted) and its default (... where it has none)."""
    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.update(config_keys(annotation, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = ... if info.is_required() else info.get_default(call_default_factory=True)
    return keys


def test_every_workflow_parameter_is_a_config_key_or_says_why_not() -> None:
    argo = pipeline_parameters()
    mapped = set(ARGO_PARAMETERS.values())
    assert len(mapped) == len(ARGO_PARAMETERS), "two config keys map onto one parameter"
    assert not mapped & set(NOT_IN_CONFIG), "a parameter is both configured and explained away"
    assert set(argo) == mapped | set(NOT_IN_CONFIG), {
        "parameters with neither a key nor a reason": sorted(set(argo) - mapped - set(NOT_IN_CONFIG)),
        "keys or reasons for no parameter": sorted((mapped | set(NOT_IN_CONFIG)) - set(argo)),
    }
    assert all(len(reason) > 20 for reason in NOT_IN_CONFIG.values())


def test_every_config_key_maps_to_an_argo_parameter_with_its_default() -> None:
    keys = config_keys(RunConfig)
    assert set(keys) == set(ARGO_PARAMETERS) | set(ARGO_FIELDS), sorted(set(keys) ^ set(ARGO_PARAMETERS))
    argo = pipeline_parameters()
    for key, parameter in ARGO_PARAMETERS.items():
        default = keys[key]
        if default is ... or parameter in DEFAULTS_DIFFER or key == "output":
            continue  # required in a config (the workflow's value is a placeholder bucket), or explained
        assert argo_value(key, default) == argo[parameter], (key, parameter)
    assert set(DEFAULTS_DIFFER) <= set(ARGO_PARAMETERS.values())


def test_the_packaged_manifests_and_configs_are_the_source_trees() -> None:
    """The runner reads the manifests from the package: the same documents as argo/, never a copy."""
    for name in ("pipeline.yaml", "workflowtemplate.yaml"):
        assert manifest(name) == yaml.safe_load((ARGO / name).read_text())
    assert packaged_config("demo.yaml") == (CONFIGS / "demo.yaml").read_text()


@pytest.mark.parametrize("name", ["demo.yaml", "real-data.yaml"])
def test_the_example_configs_validate(name: str) -> None:
    config = load_config(str(CONFIGS / name))
    assert config.predict.before.start <= config.predict.after.start
    assert Path(config.train.aoi).is_absolute(), "relative paths are resolved against the config's folder"


def write_config(folder: Path, text: str) -> Path:
    path = folder / "run.yaml"
    path.write_text(textwrap.dedent(text))
    return path


MINIMAL = """\
    output: out
    stac: {url: https://stac.example/v1}
    train: {aoi: aoi.geojson, start: 2023-01-01, end: 2023-12-31, labels: labels.gpkg}
    predict:
      aoi: predict.geojson
      before: {start: 2023-01-01, end: 2023-12-31, labels: check-2023.gpkg}
      after: {start: 2024-01-01, end: 2024-12-31}
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "    chips: {colour: red}\n", r"unknown key chips\.colour; fix: see the commented example configs"),
        (MINIMAL.replace("labels: labels.gpkg", "lables: labels.gpkg"), r"missing key train\.labels; .*train\.lables"),
        (MINIMAL + "    model: {epochs: many}\n", r"model\.epochs: Input should be a valid integer"),
        (MINIMAL.replace("end: 2024-12-31", "end: 2023-06-30"), r"predict\.after: end 2023-06-30 is before start"),
        (MINIMAL + "    model: {architecture: vgg}\n", r"model\.architecture: Input should be 'temporal-pixel'"),
        ("- just\n- a list\n", r"is not a mapping of keys"),
        ("train: [unclosed\n", r"is not valid YAML"),
    ],
)
def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(BadInputError, match=message):
        run_stage.run(inputs=RunInputs(config=(str(path),)), output="", params=RunParams())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.yaml"], "refused before anything was written"


def test_a_missing_config_or_output_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="run config not found"):
        run_stage.run(inputs=RunInputs(config=(str(tmp_path / "nope.yaml"),)), output="", params=RunParams())
    path = write_config(tmp_path, MINIMAL.replace("    output: out\n", ""))
    with pytest.raises(BadInputError, match="names no `output` and no --out was given"):
        run_stage.run(inputs=RunInputs(config=(str(path),)), output="", params=RunParams())


def test_dry_run_prints_the_workflow_parameters_from_the_command_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, MINIMAL)
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "run",
            str(path),
            "--dry-run",
            "--override",
            "chips.count=48,model.lr=auto,chips.size=auto",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    parameters = json.loads(completed.stdout.splitlines()[-1])["parameters"]
    assert parameters["chip-count"] == "48"
    assert parameters["chip-size"] == "auto", "chosen by the chips stage for the training AOI"
    assert parameters["lr"] == "auto"
    assert parameters["labels-after"] == ""
    assert parameters["aoi-train"] == str(tmp_path / "aoi.geojson")
    assert parameters["output-root"] == str(tmp_path / "out")
    assert parameters["pretrained"] == "--no-pretrained"
    assert not (tmp_path / "out").exists()
    bad = subprocess.run(
        [str(BIN / "deep-lulc"), "run", str(path), "--override", "chips.size=4"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("deep-lulc run: error: run config")
    assert "chips.size: Input should be greater than or equal to 16 or Input should be 'auto';" in bad.stderr


# A stand-in for `deep-lulc`: records each call, publishes `--out` and the output parameters the templates read,
# fails where FAIL names a step (stage and --out suffix), and makes the two plan-tiles steps wait for each other
# (so they can only both finish when they run side by side).
FAKE = r"""
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
stage = args[0]
value = lambda flag: args[args.index(flag) + 1]
out, outputs = Path(value("--out")), Path(value("--outputs-dir"))
log = Path(os.environ["FAKE_LOG"])
with log.open("a") as f:  # the scratch --outputs-dir differs from call to call
    f.write(json.dumps([a if a != str(outputs) else "OUTPUTS" for a in args]) + "\n")
if os.environ.get("HANG") == stage:  # a step that runs until it is stopped
    (log.parent / "hanging.pid").write_text(str(os.getpid()))
    time.sleep(600)
failing = os.environ.get("FAIL", "")
if failing and f"{stage}:{out}".endswith(failing):
    print(f"deep-lulc {stage}: error: made to fail; fix: unset FAIL", file=sys.stderr)
    sys.exit(int(os.environ.get("FAIL_CODE", "2")))
if stage == "plan-tiles":
    running = log.parent / "running"
    running.mkdir(exist_ok=True)
    (running / str(os.getpid())).touch()
    deadline = time.monotonic() + 20
    while len(list(running.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    met = len(list(running.iterdir())) >= 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("{}")
    (outputs / "catalog").write_text(str(out))
    (outputs / "tiles").write_text(json.dumps([{"id": "r0-c0"}, {"id": "r0-c1"}, {"id": "r1-c0"}]))
    with (log.parent / "met").open("a") as f:
        f.write(f"{met}\n")
else:
    out.mkdir(parents=True, exist_ok=True)
    (out / "catalog.json").write_text("{}")
    (outputs / "catalog").write_text(str(out / "catalog.json"))
print(json.dumps({"stage": stage, "catalog": str(out / "catalog.json"), "items": [], "version": "0"}))
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Path]:
    script = tmp_path / "fake-deep-lulc.py"
    script.write_text(FAKE)
    log = tmp_path / "calls" / "log.jsonl"
    log.parent.mkdir()
    monkeypatch.setenv("FAKE_LOG", str(log))
    return [sys.executable, str(script)], log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_the_runner_runs_the_pipeline_dag_in_parallel_and_resumes_after_a_failure(
    tmp_path: Path, fake: tuple[list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    executable, log = fake
    config = load_config(str(write_config(tmp_path, MINIMAL)))
    root = str(tmp_path / "out")
    monkeypatch.setenv("FAIL", "after/tiles/r0-c1/prediction")  # one tile of one period fails
    with (
        pytest.raises(
            BadInputError, match=r"step map-after/map-tile\(1\)/predict \(predict\) exited 2: .*made to fail"
        ),
        Runner(config, root, jobs=3, executable=executable) as runner,
    ):
        runner.run()
    first = calls(log)
    stages = [call[0] for call in first]
    assert stages.count("plan-tiles") == 2
    assert (log.parent / "met").read_text().split() == ["True", "True"], "the two periods ran side by side"
    assert "change" not in stages, "nothing that depends on the failed step ran"
    failed = next(
        call for call in first if call[0] == "predict" and "after/tiles/r0-c1/" in call[call.index("--out") + 1]
    )
    log.unlink()

    monkeypatch.delenv("FAIL")
    with Runner(config, root, jobs=3, executable=executable) as runner:
        steps = runner.run()
    second = calls(log)
    assert failed in second, "the failed step is redone"
    assert all(call not in first or call == failed for call in second), "finished steps are reused, not rerun"
    assert {"change", "evaluate"} <= {call[0] for call in second}
    # training 4, per period plan-tiles + 3 tiles x (cube, features, predict) + merge, change, evaluate-before
    # (labels-after is empty: evaluate-after and evaluate-change are skipped, as Argo's `when` skips them)
    assert len(steps) == 4 + 2 * (1 + 3 * 3 + 1) + 1 + 1
    assert sum(outcome.reused for outcome in steps.values()) == len(first) - 1
    assert len(first) - 1 + len(second) == len(steps)
    log.unlink()

    with Runner(config, root, jobs=3, executable=executable) as runner:
        runner.run()
    assert calls(log) == [], "a finished run starts no process"


INTERRUPTED_RUN = """
import signal, sys
from deep_lulc.stages.run.config import load_config
from deep_lulc.stages.run.runner import Runner
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as the stage runtime turns SIGTERM into an exception
config, root, *executable = sys.argv[1:]
with Runner(load_config(config), root, jobs=2, executable=executable) as runner:
    runner.run()
"""


def test_an_interrupted_run_stops_its_steps_and_the_rerun_resumes(
    tmp_path: Path, fake: tuple[list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    executable, log = fake
    config_file = write_config(tmp_path, MINIMAL)
    root = str(tmp_path / "out")
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_RUN)
    monkeypatch.setenv("HANG", "train")
    runner = subprocess.Popen([sys.executable, str(script), str(config_file), root, *executable])
    hanging = log.parent / "hanging.pid"
    deadline = time.monotonic() + 120
    while not hanging.exists() and runner.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hanging.exists(), "the train step never started"
    time.sleep(0.2)  # the pid file is written: the step is in its sleep
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 143
    step = int(hanging.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(step, 0)  # the runner stopped its running step before it exited (and reaped it)
    assert [call[0] for call in calls(log)] == ["cube", "features", "chips", "train"]
    log.unlink()

    monkeypatch.delenv("HANG")
    with Runner(load_config(str(config_file)), root, jobs=2, executable=executable) as again:
        steps = again.run()
    assert calls(log)[0][0] == "train", "the rerun starts where the run stopped"
    assert [path for path, outcome in steps.items() if outcome.reused] == ["cube-train", "features-train", "chips"]


def test_jobs_one_runs_one_step_at_a_time_and_a_transient_failure_stays_transient(
    tmp_path: Path, fake: tuple[list[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    executable, log = fake
    config = load_config(str(write_config(tmp_path, MINIMAL)))
    monkeypatch.setenv("FAIL", "model")
    monkeypatch.setenv("FAIL_CODE", "75")
    with (
        pytest.raises(TransientError, match=r"step train \(train\) exited 75"),
        Runner(config, str(tmp_path / "out"), jobs=1, executable=executable) as runner,
    ):
        runner.run()
    assert [call[0] for call in calls(log)] == ["cube", "features", "chips", "train"]


@pytest.mark.slow
@pytest.mark.needs_shared  # the real crop tile (a local STAC catalog of it) lives in ../shared/realdata
def test_the_real_data_example_config_runs_on_the_real_tile(tmp_path: Path) -> None:
    """configs/real-data.yaml, the README's quick start, with its paths pointed at the real tile and its sizes cut
    to minutes: the command a user runs, from the command line."""
    needs_shared()
    tile = SHARED / "realdata" / "pixels" / "cropmaps_T31TEJ_2018"
    labels = tile / "labels"
    whole_year = {"start": "2018-01-01", "end": "2018-12-31"}  # the tile has one year: both periods are it
    overrides = {
        "stac.url": tile / "stac" / "catalog.json",
        "train.aoi": labels / "aoi_train.geojson",
        "train.labels": labels / "train_labels.geojson",
        **{f"train.{key}": value for key, value in whole_year.items()},
        "predict.aoi": labels / "aoi_test.geojson",
        **{f"predict.{period}.{key}": value for period in ("before", "after") for key, value in whole_year.items()},
        "predict.before.labels": labels / "test_labels.geojson",
        "predict.after.labels": labels / "test_labels.geojson",
        "classes.scheme": tile / "classes.yaml",
        "classes.column": "class_id",
        "chips.size": 32,
        "chips.count": 48,
        "chips.block_size": 2,
        "model.epochs": 2,
    }
    override = ",".join(f"{key}={value}" for key, value in overrides.items())
    command = [str(BIN / "deep-lulc"), "run", str(CONFIGS / "real-data.yaml"), "--out", str(tmp_path)]
    completed = subprocess.run([*command, "--override", override], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = json.loads(completed.stdout.splitlines()[-1])
    assert line["run"] == str(tmp_path / "my-first-map")
    assert line["reused"] == []
    products = line["products"]
    assert set(products) == {"model", "before", "after", "change", "evaluation_before", "evaluation_after",
                             "evaluation_change"}  # fmt: skip
    assert validate_tree(products["before"]) == 3
    scores = json.loads((Path(products["evaluation_before"]).parent / "result.json").read_text())["result"]
    assert 0 < scores["miou"] <= 1, "the map scores against the tile's test labels"
    scheme = {entry["name"] for entry in yaml.safe_load((tile / "classes.yaml").read_text())["classes"]}
    assert set(scores["iou"]) <= scheme, "the map carries the config's class scheme, not the default"
    again = subprocess.run([*command, "--override", override], capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(json.loads(again.stdout.splitlines()[-1])["reused"]) == line["steps"], "a rerun reuses every step"

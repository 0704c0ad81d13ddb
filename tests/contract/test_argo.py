"""The Argo manifests: valid against Argo's schema with no unknown keys, every step a real `deep-lulc` command,
GPU only where it belongs, hardened pods, and a local run of the whole pipeline's wiring on s3:// outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from typer.exceptions import TyperException

from deep_lulc.shared.io.stac import items_of, read_stac
from deep_lulc.stages.cli import app

from ..argo_local import EXPRESSION, LocalArgo
from ..conftest import BIN, PROJECT_ROOT, SCHEMAS, cli_env, needs_shared

ARGO = PROJECT_ROOT / "argo"
SCHEMA_FILE = SCHEMAS / "argo" / "v4.1.2" / "schema.json"
GPU_STAGES = {"train", "predict"}
DEFINITIONS = "io.argoproj.workflow.v1alpha1."


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = [(path, yaml.safe_load(path.read_text())) for path in sorted(ARGO.glob("*.yaml"))]
    assert {path.name for path, _ in found} >= {"workflowtemplate.yaml", "pipeline.yaml"}
    return found


def library() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ARGO / "workflowtemplate.yaml").read_text())
    return document


def stage_templates() -> list[dict[str, Any]]:
    return [t for t in library()["spec"]["templates"] if "container" in t]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    needs_shared()
    document: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return document


@pytest.mark.parametrize("path", sorted(ARGO.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_validates_against_the_argo_schema(path: Path, schema: dict[str, Any]) -> None:
    document = yaml.safe_load(path.read_text())
    wrapper = {"$ref": f"#/definitions/{DEFINITIONS}{document['kind']}", "definitions": schema["definitions"]}
    validator = jsonschema.Draft7Validator(wrapper)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def unknown_keys(value: Any, schema: dict[str, Any], definitions: dict[str, Any], where: str) -> list[str]:
    """Keys the schema does not define (its objects do not forbid extra keys, so validation misses typos)."""
    while "$ref" in schema:
        schema = definitions[schema["$ref"].split("/")[-1]]
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, child in value.items():
            if key not in schema["properties"]:
                if not schema.get("additionalProperties"):
                    found.append(f"{where}.{key}")
                continue
            found += unknown_keys(child, schema["properties"][key], definitions, f"{where}.{key}")
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, child in value.items():
            found += unknown_keys(child, schema["additionalProperties"], definitions, f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, child in enumerate(value):
            found += unknown_keys(child, schema["items"], definitions, f"{where}[{index}]")
    return found


@pytest.mark.parametrize("path", sorted(ARGO.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_uses_only_known_keys(path: Path, schema: dict[str, Any]) -> None:
    document = yaml.safe_load(path.read_text())
    definitions = schema["definitions"]
    root = definitions[DEFINITIONS + document["kind"]]
    assert unknown_keys(document, root, definitions, document["kind"]) == []
    # the checker must catch a typo, or the assertion above proves nothing
    broken = json.loads(json.dumps(document))
    broken["spec"]["templates"][0]["retryStategy"] = {}
    assert unknown_keys(broken, root, definitions, "x") == ["x.spec.templates[0].retryStategy"]


def dummy(name: str) -> str:
    """A plausible value for a required input, so parsing checks the option names and types."""
    if name in {"start", "end"}:
        return {"start": "2023-01-01", "end": "2023-12-31"}[name]
    return f"s3://bucket/{name}"


def substituted_args(template: dict[str, Any], workflow_parameters: dict[str, str]) -> list[str]:
    inputs = {
        p["name"]: str(p.get("value", dummy(p["name"]))) for p in template.get("inputs", {}).get("parameters", [])
    }

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key.startswith("inputs.parameters."):
            return inputs[key.removeprefix("inputs.parameters.")]
        if key.startswith("workflow.parameters."):
            return workflow_parameters[key.removeprefix("workflow.parameters.")]
        raise KeyError(key)

    return [EXPRESSION.sub(value, str(argument)) for argument in template["container"]["args"]]


def parse(arguments: list[str]) -> Any:
    """Parse like the real `deep-lulc` would (option names, types, required options), without running it."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    name, *rest = arguments
    assert name in commands, f"no such command {name}"
    return commands[name].make_context(name, rest)


def test_every_container_step_parses_as_a_deep_lulc_command() -> None:
    document = library()
    workflow_parameters = {p["name"]: str(p["value"]) for p in document["spec"]["arguments"]["parameters"]}
    seen = set()
    for template in stage_templates():
        arguments = substituted_args(template, workflow_parameters)
        context = parse(arguments)
        seen.add(context.info_name)
        assert context.params["outputs_dir"] is not None, f"{template['name']} must write Argo output files"
    assert seen == {
        "search",
        "cube",
        "features",
        "chips",
        "train",
        "plan-tiles",
        "predict",
        "merge",
        "change",
        "sample",
        "area",
        "evaluate",
    }
    with pytest.raises(TyperException, match="No such option"):
        parse(["predict", "--model", "m", "--features", "f", "--out", "o", "--tile-sise", "3"])
    with pytest.raises(TyperException, match="valid integer"):
        parse(["predict", "--model", "m", "--features", "f", "--out", "o", "--tile-size", "big"])


def test_gpu_templates_have_the_gpu_and_cpu_templates_none() -> None:
    for template in stage_templates():
        resources = template["container"]["resources"]
        gpu = template["container"]["args"][0] in GPU_STAGES
        assert ("nvidia.com/gpu" in resources.get("limits", {})) == gpu, template["name"]
        assert ("tolerations" in template) == gpu, template["name"]
        assert ("nodeSelector" in template) == gpu, template["name"]
        if gpu:
            assert resources["limits"]["nvidia.com/gpu"] == "1"  # a string: Argo types quantities as strings
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in template["tolerations"]
            assert template["nodeSelector"] == {
                "{{workflow.parameters.gpu-node-key}}": "{{workflow.parameters.gpu-node-value}}"
            }
            assert template["container"]["image"] == "{{workflow.parameters.gpu-image}}"
        else:
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert template["container"]["image"] == "{{workflow.parameters.cpu-image}}"


def retries(expression: str, *, status: str, exit_code: str) -> bool:
    """Evaluate an Argo retry expression (the expr-lang subset it uses: ==, in [...], ||, asInt) for one outcome."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z_.]*", re.sub(r'"[^"]*"', "", expression)))
    assert names <= {"lastRetry.status", "lastRetry.exitCode", "asInt", "in"}, names

    def as_int(text: str) -> int:
        return int(text)  # Argo's asInt fails on "" too: the expression must test the status first

    python = expression.replace("||", " or ").replace("&&", " and ").replace("asInt(", "as_int(")
    python = python.replace("lastRetry.status", repr(status)).replace("lastRetry.exitCode", repr(exit_code))
    return bool(eval(python, {"__builtins__": {}}, {"as_int": as_int}))


def test_pods_are_hardened_and_retry_only_transient_failures() -> None:
    for template in stage_templates():
        name = template["name"]
        assert template["securityContext"]["runAsNonRoot"] is True, name
        container = template["container"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        scratch = {v["name"] for v in template["volumes"] if "emptyDir" in v}
        assert any(m["mountPath"] == "/tmp" and m["name"] in scratch for m in container["volumeMounts"]), name
        retry = template["retryStrategy"]
        assert retry["retryPolicy"] == "Always", f"{name}: pod errors (eviction, node loss) need Always"
        outcomes = {
            ("Failed", "75"): True,
            ("Failed", "137"): True,
            ("Failed", "143"): True,
            ("Error", ""): True,
            ("Failed", "2"): False,
            ("Failed", "3"): False,
            ("Failed", "1"): False,
        }
        for (status, code), retried in outcomes.items():
            assert retries(retry["expression"], status=status, exit_code=code) is retried, (name, status, code)
        assert "backoff" in retry, name
        assert template["serviceAccountName"] == "{{workflow.parameters.service-account}}", name
        assert container["imagePullPolicy"] == "{{workflow.parameters.image-pull-policy}}", name
        size_limit = next(v["emptyDir"]["sizeLimit"] for v in template["volumes"] if "emptyDir" in v)
        assert container["resources"]["requests"]["ephemeral-storage"] == size_limit, name
        assert int(template["activeDeadlineSeconds"]) > 0, name
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
        assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(secrets), name
        assert all("value" not in e for e in container["env"]), f"{name}: literal env values"
    for _, document in manifests():
        assert "podGC" in document["spec"]
        names = [p["name"] for p in document["spec"].get("arguments", {}).get("parameters", [])]
        assert not [n for n in names if re.search(r"key-id|secret-access|password|token", n)], names


@pytest.mark.slow
def test_pipeline_runs_end_to_end_on_local_processes(
    stac_api: str, tiny_catalog: Path, s3_bucket: str, s3_server: str
) -> None:
    pipeline = yaml.safe_load((ARGO / "pipeline.yaml").read_text())
    runner = LocalArgo(workflow=pipeline, library={"deep-lulc": library()}, executable=BIN / "deep-lulc", env=cli_env())
    root = f"s3://{s3_bucket}/deep-lulc"
    runner.run(
        {
            "stac": stac_api,
            "aoi-train": str(tiny_catalog / "aoi-train.geojson"),
            "aoi-predict": str(tiny_catalog / "aoi-predict.geojson"),
            "labels": str(tiny_catalog / "labels.gpkg"),
            "labels-before": str(tiny_catalog / "labels.gpkg"),
            "labels-after": str(tiny_catalog / "labels-2024.gpkg"),
            "epochs": "1",
            "pretrained": "--no-pretrained",
            "lr": "0.001",
            "chip-size": "32",
            "chip-count": "48",
            "chip-block-size": "1",
            "chip-val-fraction": "0.3",
            "chip-min-labelled": "0.3",
            "tile-size": "64",
            "output-root": root,
            "gpu-device": "cpu",
        }
    )
    stages = [arguments[0] for arguments in runner.commands]
    assert stages.count("predict") >= 4, "each period fans out over several tiles"
    assert stages.count("plan-tiles") == 2
    for stage in ("cube", "features"):  # the fan-out starts at cube: one per tile and period, plus training's
        assert stages.count(stage) == stages.count("predict") + 1, stage
    assert stages.count("merge") == 2
    assert stages.count("evaluate") == 3
    prefix = f"{root}/{runner.workflow_name}"
    for folder, asset in (("before/prediction", "classes"), ("after/prediction", "classes"), ("change", "change")):
        items = items_of(read_stac(f"{prefix}/{folder}/catalog.json"))
        assert len(items) == 1
        items[0].validate()
        assert asset in items[0].assets
        assert items[0].assets[asset].get_absolute_href().startswith(f"s3://{s3_bucket}/")  # type: ignore[union-attr]
    merged = items_of(read_stac(f"{prefix}/before/prediction/catalog.json"))[0]
    assert len(merged.properties["deep-lulc:merged_tiles"]) == stages.count("predict") // 2


def test_the_gpu_image_states_the_driver_its_cuda_runtime_needs() -> None:
    """The wheel's CUDA version decides the minimum driver: the note must name the version actually locked."""
    import torch

    cuda = torch.version.cuda
    if cuda is None:
        pytest.skip("this torch build carries no CUDA runtime")
    note = (ARGO.parent / "dockerfiles" / "README.md").read_text(encoding="utf-8")
    assert f"CUDA {cuda}" in note, f"dockerfiles/README.md must state the driver needed by CUDA {cuda}"
    assert re.search(r"driver R\d{3} or newer", note)

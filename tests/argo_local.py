"""Just enough of Argo Workflows to run a Deep LULC pipeline's wiring on this machine.

It reads the Workflow and the WorkflowTemplate it references, orders DAG tasks by `depends`, evaluates
the simple `when` conditions used there, expands `withParam`, substitutes `{{...}}` expressions the way
Argo does (workflow and input parameters, task outputs, items, aggregated fan-out outputs as JSON arrays),
and runs each container's `deep-lulc` arguments as a subprocess. Output parameters are read from the
files `--outputs-dir` writes, as Argo's executor reads `valueFrom.path`.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
OUTPUTS_DIR = "/tmp/outputs"


def dependencies(expression: str) -> list[str]:
    """Task names in a `depends` expression such as `a && (b.Succeeded || c)`."""
    names = re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z]+)?", expression)
    return [name.split(".")[0] for name in names]


def ordered(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {task["name"]: task for task in tasks}
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in path:
            raise ValueError(f"dependency cycle through {name}")
        for dependency in dependencies(by_name[name].get("depends", "")):
            if dependency not in by_name:
                raise ValueError(f"task {name} depends on unknown task {dependency}")
            visit(dependency, (*path, name))
        done.append(name)

    for task in tasks:
        visit(task["name"], ())
    return [by_name[name] for name in done]


def condition_holds(expression: str) -> bool:
    """The `'x' != ''` / `==` comparisons joined by && that the pipeline uses (already substituted)."""
    for clause in expression.split("&&"):
        match = re.fullmatch(r"\s*'([^']*)'\s*(!=|==)\s*'([^']*)'\s*", clause)
        if match is None:
            raise ValueError(f"unsupported when clause: {clause!r}")
        left, operator, right = match.groups()
        if (left == right) != (operator == "=="):
            return False
    return True


@dataclass
class LocalArgo:
    workflow: dict[str, Any]
    library: dict[str, dict[str, Any]]  # WorkflowTemplate name -> its document
    executable: Path
    env: Mapping[str, str]
    workflow_name: str = "deep-lulc-local"
    commands: list[list[str]] = field(default_factory=list)

    def parameters(self) -> dict[str, str]:
        return {p["name"]: str(p.get("value", "")) for p in self.workflow["spec"]["arguments"]["parameters"]}

    def run(self, overrides: Mapping[str, str]) -> dict[str, str]:
        unknown = set(overrides) - set(self.parameters())
        if unknown:
            raise ValueError(f"unknown workflow parameters {sorted(unknown)}")
        self.globals = {**self.parameters(), **overrides}
        entry = self.local_template(self.workflow["spec"]["entrypoint"])
        return self.execute(entry, {})

    def local_template(self, name: str) -> dict[str, Any]:
        return next(t for t in self.workflow["spec"]["templates"] if t["name"] == name)

    def referenced(self, task: dict[str, Any]) -> dict[str, Any]:
        if "templateRef" in task:
            reference = task["templateRef"]
            library = self.library[reference["name"]]
            return next(t for t in library["spec"]["templates"] if t["name"] == reference["template"])
        return self.local_template(task["template"])

    def substitute(self, text: str, scope: Mapping[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "workflow.name":
                return self.workflow_name
            if key.startswith("workflow.parameters."):
                return self.globals[key.removeprefix("workflow.parameters.")]
            if key.startswith("inputs.parameters."):
                return str(scope["inputs"][key.removeprefix("inputs.parameters.")])
            if key.startswith("tasks."):
                task, _, rest = key.removeprefix("tasks.").partition(".outputs.parameters.")
                return str(scope["tasks"][task][rest])
            if key == "item":
                item = scope["item"]
                return item if isinstance(item, str) else json.dumps(item)
            if key.startswith("item."):
                return str(scope["item"][key.removeprefix("item.")])
            raise KeyError(f"unsupported expression {{{{{key}}}}}")

        return EXPRESSION.sub(value, text)

    def inputs_for(self, template: dict[str, Any], given: Mapping[str, str]) -> dict[str, str]:
        values = {}
        for parameter in template.get("inputs", {}).get("parameters", []):
            name = parameter["name"]
            if name in given:
                values[name] = given[name]
            elif "value" in parameter:
                values[name] = self.substitute(str(parameter["value"]), {"inputs": {}})
            else:
                raise ValueError(f"template {template['name']} needs input {name}")
        return values

    def execute(self, template: dict[str, Any], given: Mapping[str, str]) -> dict[str, str]:
        inputs = self.inputs_for(template, given)
        if "dag" in template:
            return self.run_dag(template, inputs)
        return self.run_container(template, inputs)

    def run_dag(self, template: dict[str, Any], inputs: dict[str, str]) -> dict[str, str]:
        results: dict[str, dict[str, str]] = {}
        scope: dict[str, Any] = {"inputs": inputs, "tasks": results}
        for task in ordered(template["dag"]["tasks"]):
            if "when" in task and not condition_holds(self.substitute(task["when"], scope)):
                continue
            target = self.referenced(task)
            arguments = task.get("arguments", {}).get("parameters", [])
            if "withParam" in task:
                items = json.loads(self.substitute(task["withParam"], scope))
                given_per_item = [
                    {a["name"]: self.substitute(str(a["value"]), {**scope, "item": item}) for a in arguments}
                    for item in items
                ]
                # Argo runs a fan-out's pods side by side; so do we (most of each is the CLI's start-up)
                with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 1)) as pool:
                    outputs = list(pool.map(functools.partial(self.execute, target), given_per_item))
                names = {name for output in outputs for name in output}
                results[task["name"]] = {name: json.dumps([output[name] for output in outputs]) for name in names}
            else:
                given = {a["name"]: self.substitute(str(a["value"]), scope) for a in arguments}
                results[task["name"]] = self.execute(target, given)
        return {
            parameter["name"]: self.substitute(parameter["valueFrom"]["parameter"], scope)
            for parameter in template.get("outputs", {}).get("parameters", [])
        }

    def run_container(self, template: dict[str, Any], inputs: dict[str, str]) -> dict[str, str]:
        scope = {"inputs": inputs}
        with tempfile.TemporaryDirectory(prefix="argo-outputs-") as outputs_dir:
            arguments = [self.substitute(str(a), scope) for a in template["container"]["args"]]
            arguments = [outputs_dir if a == OUTPUTS_DIR else a for a in arguments]
            command = [str(self.executable), *arguments]
            self.commands.append(command)
            completed = subprocess.run(command, capture_output=True, text=True, env=dict(self.env), check=False)
            if completed.returncode != 0:
                raise AssertionError(
                    f"{template['name']} exited {completed.returncode}: {' '.join(command)}\n{completed.stderr[-3000:]}"
                )
            outputs = {}
            for parameter in template.get("outputs", {}).get("parameters", []):
                path = str(parameter["valueFrom"]["path"]).replace(OUTPUTS_DIR, outputs_dir, 1)
                outputs[parameter["name"]] = Path(path).read_text(encoding="utf-8")
            return outputs

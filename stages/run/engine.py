"""Just enough of Argo Workflows to run `argo/pipeline.yaml` on one machine, so the manifests are the one
source of the DAG and `deep-lulc run` cannot drift from what the cluster runs.

It reads the Workflow and the WorkflowTemplate it references, starts each DAG task once its `depends` are
done, evaluates the `when` comparisons the pipeline uses, expands `withParam`, substitutes `{{...}}` the way
Argo does (workflow and input parameters, task outputs, items, a fan-out's outputs aggregated as JSON
arrays), and runs each container's `deep-lulc` arguments as a subprocess, as the container would. Output
parameters are read from the files `--outputs-dir` writes, as Argo's executor reads `valueFrom.path`.
Independent steps run side by side, at most `jobs` containers at a time.

Argo's own engine is a Kubernetes controller and cannot run without a cluster; this is the subset the
pipeline uses (no loops, retries, artifacts or exit handlers), and a construct outside it is an error, never
silently skipped. A template's `parallelism` is left to `jobs`, the machine-wide limit.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
OUTPUTS_DIR = "/tmp/outputs"  # where the templates' containers write their output parameters
STDERR_TAIL = 3000
STOP_SECONDS = 30  # a stage sent SIGTERM removes its staging folder and exits 143 well within this


def dependencies(expression: str) -> list[str]:
    """Task names in a `depends` expression such as `a && (b.Succeeded || c)`."""
    names = re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z]+)?", expression)
    return [name.split(".")[0] for name in names]


def ordered(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks in an order that runs every task after its dependencies; a cycle or an unknown name is an error."""
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


@dataclass(frozen=True)
class Step:
    """One container invocation: where it sits in the DAG (`map-before/map-tile(0)/cube`), its template and
    its `deep-lulc` arguments, `--outputs-dir` still the container's path."""

    path: str
    template: dict[str, Any]
    arguments: tuple[str, ...]

    @property
    def stage(self) -> str:
        return self.arguments[0]


@dataclass(frozen=True)
class Outcome:
    """What a finished step handed on: its output parameters and its stdout result line (None when the step
    printed none)."""

    outputs: dict[str, str]
    result: dict[str, Any] | None = None
    reused: bool = False
    seconds: float | None = None


class StepFailedError(Exception):
    """A step's command exited non-zero."""

    def __init__(self, step: Step, code: int, stderr: str) -> None:
        self.step, self.code, self.stderr = step, code, stderr
        last = next((line for line in reversed(stderr.strip().splitlines()) if line.strip()), "")
        self.last_line = last.strip()
        super().__init__(f"step {step.path} ({step.stage}) exited {code}: {self.last_line}")


Launcher = Callable[[Step], Outcome]


class Subprocesses:
    """Run a step as its container would: `deep-lulc <args>` with a scratch --outputs-dir, then read the
    output parameters from the files the template names. `terminate()` stops the steps still running (the
    runner interrupted), so none outlives it."""

    def __init__(self, executable: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.executable = list(executable)
        self.env = None if env is None else dict(env)
        self._running: set[subprocess.Popen[str]] = set()
        self._lock = threading.Lock()

    def __call__(self, step: Step) -> Outcome:
        with tempfile.TemporaryDirectory(prefix="deep-lulc-outputs-") as outputs_dir:
            arguments = [outputs_dir if a == OUTPUTS_DIR else a for a in step.arguments]
            process = subprocess.Popen(
                [*self.executable, *arguments],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self.env,
            )
            with self._lock:
                self._running.add(process)
            try:
                stdout, stderr = process.communicate()
            except BaseException:  # the runner itself is stopping (SIGTERM, Ctrl-C): so does the step
                _stop(process)
                raise
            finally:
                with self._lock:
                    self._running.discard(process)
            if process.returncode != 0:
                raise StepFailedError(step, process.returncode, stderr[-STDERR_TAIL:])
            outputs = {}
            for parameter in step.template.get("outputs", {}).get("parameters", []):
                path = str(parameter["valueFrom"]["path"]).replace(OUTPUTS_DIR, outputs_dir, 1)
                outputs[parameter["name"]] = Path(path).read_text(encoding="utf-8")
            return Outcome(outputs, _result_line(stdout))

    def terminate(self) -> None:
        """SIGTERM every running step (each stage cleans its staging folder up and exits 143)."""
        with self._lock:
            running = list(self._running)
        for process in running:
            _stop(process)


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, and the stage's own cleanup (its staging folder) given time to finish before it is killed."""
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _result_line(stdout: str) -> dict[str, Any] | None:
    """The contract's one JSON line, the last on stdout."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        document = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


@dataclass
class Workflow:
    """A Workflow document and the WorkflowTemplates it references, run with `launch` per container step."""

    workflow: dict[str, Any]
    library: dict[str, dict[str, Any]]  # WorkflowTemplate name -> its document
    launch: Launcher
    jobs: int = 1
    workflow_name: str = "deep-lulc-local"
    steps: dict[str, Outcome] = field(default_factory=dict)  # by step path, in the order they finished
    commands: list[list[str]] = field(default_factory=list)  # every step's arguments, in the order started
    on_step: Callable[[Step, Outcome], None] | None = None
    stop: Callable[[], None] | None = None  # stops the running steps when the runner is interrupted

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(max(1, self.jobs))
        self._lock = threading.Lock()
        self._failed = threading.Event()
        self.globals: dict[str, str] = {}

    def parameters(self) -> dict[str, str]:
        """The workflow's parameters and their defaults."""
        return {p["name"]: str(p.get("value", "")) for p in self.workflow["spec"]["arguments"]["parameters"]}

    def run(self, overrides: Mapping[str, str]) -> dict[str, str]:
        unknown = set(overrides) - set(self.parameters())
        if unknown:
            raise ValueError(f"unknown workflow parameters {sorted(unknown)}")
        self.globals = {**self.parameters(), **overrides}
        entry = self.local_template(self.workflow["spec"]["entrypoint"])
        return self.execute(entry, {}, path="")

    def run_template(self, name: str, given: Mapping[str, str], *, path: str) -> Outcome:
        """One WorkflowTemplate container template on its own, with the workflow's parameters (for steps a
        caller adds after the pipeline, such as the demo's second model)."""
        template = self._library_template(next(iter(self.library)), name)
        inputs = self.inputs_for(template, given)
        return self.run_container(template, inputs, path=path)

    def local_template(self, name: str) -> dict[str, Any]:
        return next(t for t in self.workflow["spec"]["templates"] if t["name"] == name)

    def _library_template(self, library: str, name: str) -> dict[str, Any]:
        return next(t for t in self.library[library]["spec"]["templates"] if t["name"] == name)

    def referenced(self, task: dict[str, Any]) -> dict[str, Any]:
        if "templateRef" in task:
            reference = task["templateRef"]
            return self._library_template(reference["name"], reference["template"])
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

    def execute(self, template: dict[str, Any], given: Mapping[str, str], *, path: str) -> dict[str, str]:
        inputs = self.inputs_for(template, given)
        if "dag" in template:
            return self.run_dag(template, inputs, path=path)
        return self.run_container(template, inputs, path=path).outputs

    def run_dag(self, template: dict[str, Any], inputs: dict[str, str], *, path: str) -> dict[str, str]:
        """Start every task whose dependencies are done (a skipped task counts as done, as Argo's plain
        `depends: task` does); on a failure start nothing more, let the running steps finish, raise it."""
        tasks = ordered(template["dag"]["tasks"])
        results: dict[str, dict[str, str]] = {}
        scope: dict[str, Any] = {"inputs": inputs, "tasks": results}
        finished: set[str] = set()
        running: dict[Future[dict[str, str] | None], str] = {}
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=max(1, len(tasks)), thread_name_prefix="dag") as pool:
            try:
                self._schedule(pool, tasks, scope, path, running, finished, results, errors)
            except BaseException:  # interrupted (SIGTERM, Ctrl-C): stop the steps, or the pool waits for them
                self._failed.set()
                if self.stop is not None:
                    self.stop()
                raise
        if errors:
            raise first_cause(errors)
        if len(finished) < len(tasks):  # stopped by a failure elsewhere in the workflow
            raise StoppedError(f"{path or 'the workflow'}: not finished, another step failed")
        return {
            parameter["name"]: self.substitute(parameter["valueFrom"]["parameter"], scope)
            for parameter in template.get("outputs", {}).get("parameters", [])
        }

    def _schedule(
        self,
        pool: ThreadPoolExecutor,
        tasks: list[dict[str, Any]],
        scope: dict[str, Any],
        path: str,
        running: dict[Future[dict[str, str] | None], str],
        finished: set[str],
        results: dict[str, dict[str, str]],
        errors: list[BaseException],
    ) -> None:
        """Start every task whose dependencies are done, until none runs."""
        while True:
            if not errors and not self._failed.is_set():
                started = set(running.values())
                for task in tasks:
                    name = task["name"]
                    if name in finished or name in started:
                        continue
                    if all(d in finished for d in dependencies(task.get("depends", ""))):
                        running[pool.submit(self._task, task, scope, f"{path}{name}")] = name
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    outputs = future.result()
                except BaseException as exc:
                    errors.append(exc)
                    self._failed.set()
                    continue
                if outputs is not None:
                    results[name] = outputs
                finished.add(name)

    def _task(self, task: dict[str, Any], scope: dict[str, Any], path: str) -> dict[str, str] | None:
        """One DAG task: None when its `when` is false (skipped)."""
        if "when" in task and not condition_holds(self.substitute(task["when"], scope)):
            return None
        target = self.referenced(task)
        arguments = task.get("arguments", {}).get("parameters", [])
        if "withParam" not in task:
            given = {a["name"]: self.substitute(str(a["value"]), scope) for a in arguments}
            return self.execute(target, given, path=path + "/")
        items = json.loads(self.substitute(task["withParam"], scope))
        if not isinstance(items, list):
            raise ValueError(f"withParam of {task['name']} is not a JSON list")
        given_per_item = [
            {a["name"]: self.substitute(str(a["value"]), {**scope, "item": item}) for a in arguments} for item in items
        ]
        # Argo runs a fan-out's pods side by side; the slots bound how many run at once
        with ThreadPoolExecutor(max_workers=max(1, len(items)), thread_name_prefix="fan-out") as pool:
            futures = [
                pool.submit(self.execute, target, given, path=f"{path}({index})/")
                for index, given in enumerate(given_per_item)
            ]
            wait(futures)
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            raise first_cause(errors)
        outputs = [future.result() for future in futures]
        names = {name for output in outputs for name in output}
        return {name: json.dumps([output[name] for output in outputs]) for name in names}

    def run_container(self, template: dict[str, Any], inputs: dict[str, str], *, path: str) -> Outcome:
        scope = {"inputs": inputs}
        arguments = tuple(self.substitute(str(a), scope) for a in template["container"]["args"])
        step = Step(path=path.rstrip("/") or template["name"], template=template, arguments=arguments)
        with self._slots:
            if self._failed.is_set():
                raise StepNotStartedError(step)
            with self._lock:
                self.commands.append(list(arguments))
            outcome = self.launch(step)
        with self._lock:
            self.steps[step.path] = outcome
        if self.on_step is not None:
            self.on_step(step, outcome)
        return outcome


def first_cause(errors: Sequence[BaseException]) -> BaseException:
    """The failure to report: a step's own, not a stop because of it."""
    return next((error for error in errors if not isinstance(error, StoppedError)), errors[0])


class StoppedError(Exception):
    """Work left undone because another step failed."""


class StepNotStartedError(StoppedError):
    """A step left unstarted because another one failed."""

    def __init__(self, step: Step) -> None:
        self.step = step
        super().__init__(f"step {step.path} not started: another step failed")

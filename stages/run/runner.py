"""A run of the pipeline under one output root: its steps' processes, their records, and steps added after it."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from deep_lulc.shared.io.storage import join_href
from deep_lulc.stages.run.config import RunConfig, workflow_parameters
from deep_lulc.stages.run.engine import Outcome, StepFailedError, Subprocesses
from deep_lulc.stages.run.steps import STATE_FOLDER, deep_lulc_command, error_of, pipeline, resuming


class Runner:
    """`with Runner(config, root) as runner: runner.run()`: every step a `deep-lulc` process, a failed step
    raised as the run's error with its exit class, and no step left running when the block exits."""

    def __init__(self, config: RunConfig, root: str, *, jobs: int, executable: list[str] | None = None) -> None:
        self.config = config
        self.folder = join_href(root, config.name)  # {{workflow.parameters.output-root}}/{{workflow.name}}
        self.parameters = workflow_parameters(config) | {"output-root": root}
        self.processes = Subprocesses(executable or deep_lulc_command())
        self.workflow = pipeline(
            resuming(self.processes, join_href(self.folder, STATE_FOLDER)), jobs=jobs, name=config.name
        )
        self.workflow.stop = self.processes.terminate
        unknown = set(self.parameters) - set(self.workflow.parameters())
        if unknown:  # the config and the packaged manifests disagree: a packaging or release bug
            raise RuntimeError(f"argo/pipeline.yaml has no parameters {sorted(unknown)}")

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.processes.terminate()

    @property
    def steps(self) -> dict[str, Outcome]:
        """Every step's outcome by its path in the DAG (`map-before/map-tile(0)/cube`)."""
        return self.workflow.steps

    def run(self) -> dict[str, Outcome]:
        try:
            self.workflow.run(self.parameters)
        except StepFailedError as failure:
            raise error_of(failure) from None
        return self.steps

    def template(self, name: str, given: Mapping[str, str], *, path: str) -> Outcome:
        """One WorkflowTemplate template with these inputs, after the pipeline (its parameters hold)."""
        if not self.workflow.globals:
            self.workflow.globals = {**self.workflow.parameters(), **self.parameters}
        try:
            return self.workflow.run_template(name, given, path=path)
        except StepFailedError as failure:
            raise error_of(failure) from None

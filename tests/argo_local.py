"""The local Argo runner the tests use: the product's engine (`deep_lulc.stages.run.engine`, what `deep-lulc run`
runs), with the test's executable and environment, and each step's failure raised with its stderr."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deep_lulc.stages.run.engine import EXPRESSION, Subprocesses, Workflow

__all__ = ["EXPRESSION", "LocalArgo"]


class LocalArgo(Workflow):
    def __init__(
        self,
        *,
        workflow: dict[str, Any],
        library: dict[str, dict[str, Any]],
        executable: Path,
        env: Mapping[str, str],
        jobs: int = 4,
    ) -> None:
        super().__init__(workflow=workflow, library=library, launch=Subprocesses([str(executable)], env), jobs=jobs)

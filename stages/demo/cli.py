"""The `deep-lulc demo` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

import sys

from deep_lulc.shared.stage.contract import NoInputs, StageResult
from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.demo.params import DemoParams

EPILOG = """
Example:

  deep-lulc demo --out demo-output
"""


def print_summary(result: StageResult) -> None:
    print("\n".join(["", *result.extra["summary"], ""]), file=sys.stderr, flush=True)


# its `run` imports every stage, torch and fastai included: only when the demo runs
COMMAND = Stage(
    "demo",
    NoInputs,
    DemoParams,
    out_help="Directory or s3:// prefix for every stage's output.",
    out_default="demo-output",
    hidden=frozenset({"overwrite"}),
    report=print_summary,
    epilog=EPILOG,
)

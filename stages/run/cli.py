"""The `deep-lulc run` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Hrefs, Stage
from deep_lulc.stages.run.params import RunInputs, RunParams

EPILOG = """
Example:

  deep-lulc run my-run.yaml --jobs 4

  deep-lulc run my-run.yaml --override model.epochs=5,chips.count=200 --out runs/
"""

CONFIG = Hrefs(
    "CONFIG",
    "The run config (YAML): STAC source, AOIs, periods, labels, class scheme, model; relative paths are "
    "relative to its folder. Commented examples: configs/demo.yaml, configs/real-data.yaml.",
    field="config",
)
COMMAND = Stage(
    "run",
    RunInputs,
    RunParams,
    hrefs=CONFIG,
    out_help="Output root (Argo's output-root; outputs go under OUT/<name>/); default: the config's `output`.",
    out_default="",
    hidden=frozenset({"overwrite"}),
    epilog=EPILOG,
)

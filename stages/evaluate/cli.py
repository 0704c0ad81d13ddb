"""The `deep-lulc evaluate` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.evaluate.params import EvaluateInputs, EvaluateParams

EPILOG = """
Examples:

  deep-lulc evaluate --prediction demo-output/predict/catalog.json --labels labels-2023.gpkg
  --out demo-output/evaluate --class-column lulc --erosion-radius 1

  deep-lulc evaluate --prediction demo-output/change/catalog.json --labels labels-2023.gpkg
  --before-labels labels-2019.gpkg --out demo-output/evaluate-change
"""

COMMAND = Stage("evaluate", EvaluateInputs, EvaluateParams, epilog=EPILOG)

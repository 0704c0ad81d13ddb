"""The `deep-lulc chips` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.chips.params import ChipsInputs, ChipsParams

EPILOG = """
Example:

  deep-lulc chips --features demo-output/features-train/catalog.json --labels demo-output/synth/labels.gpkg
  --out demo-output/chips --size 64 --sampling balanced --val-fraction 0.2
"""

COMMAND = Stage("chips", ChipsInputs, ChipsParams, epilog=EPILOG)

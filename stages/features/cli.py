"""The `deep-lulc features` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.features.params import FeaturesInputs, FeaturesParams

EPILOG = """
Example:

  deep-lulc features --cube demo-output/cube/catalog.json --out demo-output/features --min-valid 0.99 --step-days 16
"""

COMMAND = Stage("features", FeaturesInputs, FeaturesParams, epilog=EPILOG)

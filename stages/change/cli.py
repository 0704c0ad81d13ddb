"""The `deep-lulc change` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams

EPILOG = """
Examples:

  deep-lulc change --before demo-output/predict-2019/catalog.json --after demo-output/predict-2023/catalog.json
  --out demo-output/change

  deep-lulc change --before p2019/catalog.json --after p2023/catalog.json --out change-raw --method raw
"""

COMMAND = Stage("change", ChangeInputs, ChangeParams, epilog=EPILOG)

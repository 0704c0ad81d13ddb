"""The `deep-lulc train` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.train.params import TrainInputs, TrainParams

EPILOG = """
Example:

  deep-lulc train --chips demo-output/chips/catalog.json --out demo-output/model --baseline lightgbm

  deep-lulc train --chips demo-output/chips/catalog.json --out demo-output/model-lightgbm --architecture lightgbm
"""

COMMAND = Stage("train", TrainInputs, TrainParams, epilog=EPILOG)

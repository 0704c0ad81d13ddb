"""The `deep-lulc predict` and `deep-lulc plan-tiles` commands, declared for the stage runtime (which builds
their options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.predict.params import PlanTilesInputs, PlanTilesParams, PredictInputs, PredictParams

PREDICT_EPILOG = """
Examples:

  deep-lulc predict --model demo-output/model/catalog.json --features demo-output/features-2023/catalog.json
  --out demo-output/prediction-2023

  One tile of a fan-out (see plan-tiles), then `deep-lulc merge`:

  deep-lulc predict --model M --features F --out s3://bucket/run/tiles/r000-c001 --tile r000-c001
  --tiles s3://bucket/run/tiles.json
"""

PLAN_EPILOG = """
Example:

  deep-lulc plan-tiles --features demo-output/features-2023/catalog.json --tile-size 2048 --out tiles.json
"""

COMMAND = Stage("predict", PredictInputs, PredictParams, epilog=PREDICT_EPILOG)
PLAN_COMMAND = Stage(
    "plan-tiles",
    PlanTilesInputs,
    PlanTilesParams,
    run="deep_lulc.stages.predict.tiles:run",
    out_help="Where to write tiles.json (local path or s3:// URL).",
    epilog=PLAN_EPILOG,
)

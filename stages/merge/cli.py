"""The `deep-lulc merge` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Hrefs, Stage
from deep_lulc.stages.merge.params import MergeInputs, MergeParams

EPILOG = """
Example:

  deep-lulc merge s3://bucket/run/tiles/r000-c000/catalog.json s3://bucket/run/tiles/r000-c001/catalog.json
  --out s3://bucket/run/prediction
"""

TILES = Hrefs(
    "TILES...",
    "Tile prediction catalogs (one per `predict --tile`). An argument that is a JSON array of hrefs "
    "(what Argo aggregates from a withParam fan-out) counts as its elements.",
    field="tiles",
)
COMMAND = Stage("merge", MergeInputs, MergeParams, hrefs=TILES, epilog=EPILOG)

"""The `deep-lulc change` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Hrefs, Stage
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams

EPILOG = """
Examples:

  deep-lulc change --before demo-output/predict-2019/catalog.json --after demo-output/predict-2023/catalog.json
  --out demo-output/change

  deep-lulc change --before p2019/catalog.json --after p2023/catalog.json --out change-raw --method raw

  deep-lulc change p2022/catalog.json p2023/catalog.json p2024/catalog.json --out change-series
"""

MAPS = Hrefs(
    "MAPS",
    "A series of two or more maps (catalogs or items of deep-lulc predict), earliest first, instead of "
    "--before and --after: one change item per consecutive pair. An argument that is a JSON array of hrefs "
    "counts as its elements.",
    field="maps",
    required=False,
)
COMMAND = Stage("change", ChangeInputs, ChangeParams, hrefs=MAPS, epilog=EPILOG)
"""`deep-lulc change`."""

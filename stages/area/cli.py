"""The `deep-lulc area` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.area.params import AreaInputs, AreaParams

EPILOG = """
Example (draw, label the `reference` column in QGIS, estimate):

  deep-lulc sample --map demo-output/change-2023-2024/catalog.json --out sample

  deep-lulc area --map demo-output/change-2023-2024/catalog.json --sample labelled.gpkg --out area
"""

COMMAND = Stage("area", AreaInputs, AreaParams, epilog=EPILOG)

"""The `deep-lulc cube` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.sources.scene_selection import SceneInputs
from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.cube.params import CubeParams

EPILOG = """
Example:

  deep-lulc cube --stac demo-output/synth/catalog.json --collection sentinel-2-l2a
  --aoi demo-output/synth/aoi-train.geojson --start 2023-01-01 --end 2023-12-31 --out demo-output/cube
"""

COMMAND = Stage("cube", SceneInputs, CubeParams, epilog=EPILOG)

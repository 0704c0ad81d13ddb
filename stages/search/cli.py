"""The `deep-lulc search` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.sources.providers import EARTH_SEARCH, PLANETARY_COMPUTER
from deep_lulc.shared.sources.scene_selection import SceneInputs
from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.search.params import SearchParams

EPILOG = f"""
Example:

  deep-lulc search --stac {EARTH_SEARCH.stac_url} --collection {EARTH_SEARCH.collections[0]}
  --aoi aoi.geojson --start 2023-01-01 --end 2023-12-31 --max-cloud 60 --out items.json

  deep-lulc search --stac {PLANETARY_COMPUTER.stac_url} --collection {PLANETARY_COMPUTER.collections[0]}
  --aoi aoi.geojson --start 2023-01-01 --end 2023-12-31 --sign {PLANETARY_COMPUTER.signing} --out items.json
"""

COMMAND = Stage(
    "search",
    SceneInputs,
    SearchParams,
    out_help="ItemCollection JSON file to write (local or s3://); `cube --stac` reads it.",
    epilog=EPILOG,
)

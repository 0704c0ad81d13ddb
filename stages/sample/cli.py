"""The `deep-lulc sample` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.sample.params import SampleInputs, SampleParams

EPILOG = """
Examples:

  deep-lulc sample --map demo-output/change-2023-2024/catalog.json --out demo-output/sample

  deep-lulc sample --map lulc-2024.tif --classes classes.yaml --size 1000 --min-per-stratum 75 --seed 7
  --out sample-2024
"""

COMMAND = Stage("sample", SampleInputs, SampleParams, epilog=EPILOG)

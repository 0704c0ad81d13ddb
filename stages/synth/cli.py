"""The `deep-lulc synth` command, declared for the stage runtime (which builds its options from the models)."""

from __future__ import annotations

from deep_lulc.shared.stage.contract import NoInputs
from deep_lulc.shared.stage.runtime import Stage
from deep_lulc.stages.synth.params import SynthParams

EPILOG = """
Example:

  deep-lulc synth --out data/synth --seed 0 --size 512 --dates 24 --year 2023
"""

COMMAND = Stage(
    "synth",
    NoInputs,
    SynthParams,
    out_help="Output directory or s3:// prefix for catalog.json and its assets.",
    epilog=EPILOG,
)

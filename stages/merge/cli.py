"""Command-line adapter of `deep-lulc merge`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.shared.errors import BadInputError
from deep_lulc.stages.merge import stage
from deep_lulc.stages.merge.params import MergeParams

EPILOG = """
Example:

  deep-lulc merge s3://bucket/run/tiles/r000-c000/catalog.json s3://bucket/run/tiles/r000-c001/catalog.json
  --out s3://bucket/run/prediction
"""


TILES_ARGUMENT = typer.Argument(
    ...,
    help="Tile prediction catalogs (one per `predict --tile`). An argument that is a JSON array of hrefs "
    "(what Argo aggregates from a withParam fan-out) counts as its elements.",
)


def expand_hrefs(arguments: list[str]) -> list[str]:
    """Positional hrefs, with JSON arrays of hrefs flattened into them."""
    hrefs: list[str] = []
    for argument in arguments:
        if not argument.lstrip().startswith("["):
            hrefs.append(argument)
            continue
        try:
            values = json.loads(argument)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"argument {argument[:60]!r} looks like JSON but is not ({exc})",
                                fix="pass hrefs, or one JSON array of hrefs") from exc  # fmt: skip
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadInputError(f"argument {argument[:60]!r} is not a JSON array of hrefs", fix="pass hrefs")
        hrefs.extend(values)
    return hrefs


def merge(
    tiles: list[str] = TILES_ARGUMENT,
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="Leave absent tiles as nodata."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Mosaic tile predictions into one COG + item, identical to a single-process prediction."""

    def call() -> StageResult:
        params = validate_params(MergeParams, {"overwrite": overwrite, "allow_missing": allow_missing})
        hrefs = expand_hrefs(tiles)
        return stage.run(inputs={f"tile_{i:04d}": href for i, href in enumerate(hrefs)}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

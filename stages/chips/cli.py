"""Command-line adapter of `deep-lulc chips`."""

from __future__ import annotations

from pathlib import Path

import typer

from deep_lulc.shared.cli_runner import DEBUG_OPTION, OUTPUTS_DIR_OPTION, OVERWRITE_OPTION, execute
from deep_lulc.shared.contract import StageResult, validate_params
from deep_lulc.stages.chips import stage
from deep_lulc.stages.chips.params import ChipsParams

EPILOG = """
Example:

  deep-lulc chips --features demo-output/features-train/catalog.json --labels demo-output/synth/labels.gpkg
  --out demo-output/chips --size 64 --sampling balanced --val-fraction 0.2
"""


def chips(
    features: str = typer.Option(..., "--features", help="The features stage's catalog.json href."),
    labels: str = typer.Option(..., "--labels", help="Label polygons: GeoPackage, Shapefile, GeoJSON, FlatGeobuf."),
    out: str = typer.Option(..., "--out", help="Output directory or s3:// prefix."),
    class_column: str = typer.Option("lulc", "--class-column", help="Attribute with the class codes."),
    classes: str | None = typer.Option(None, "--classes", help="Class scheme YAML/JSON (default: Slovenia)."),
    class_map: str | None = typer.Option(None, "--class-map", help="YAML/JSON/CSV: source code or name -> class."),
    size: int | None = typer.Option(None, "--size", help="Chip size in pixels (default: 64, up to 256 on large AOIs)."),
    count: int | None = typer.Option(None, "--count", help="Windows to draw (default: by labelled area, 48-1024)."),
    sampling: str = typer.Option("random", "--sampling", help="random, grid or balanced."),
    min_labelled: float = typer.Option(0.5, "--min-labelled", help="Minimum labelled fraction of a chip."),
    erosion_radius: int = typer.Option(1, "--erosion-radius", help="Disk radius of the per-class erosion."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Labelled share for validation (whole blocks)."),
    block_size: int | None = typer.Option(None, "--block-size", help="Split block side in chip cells (default: 2-4)."),
    split_file: str | None = typer.Option(None, "--split-file", help="split.json forcing the block assignment."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    overwrite: bool = OVERWRITE_OPTION,
    debug: bool = DEBUG_OPTION,
    outputs_dir: Path | None = OUTPUTS_DIR_OPTION,
) -> None:
    """Rasterise and erode labels, sample chip windows, split them by blocks, write a STAC chip collection."""

    def call() -> StageResult:
        params = validate_params(
            ChipsParams,
            {"overwrite": overwrite,
                "class_column": class_column, "classes": classes, "class_map": class_map, "size": size,
                "count": count, "sampling": sampling, "min_labelled": min_labelled,
                "erosion_radius": erosion_radius, "val_fraction": val_fraction, "block_size": block_size,
                "split_file": split_file, "seed": seed,
            },
        )  # fmt: skip
        return stage.run(inputs={"features": features, "labels": labels}, output=out, params=params)

    execute(stage.STAGE, call, debug=debug, outputs_dir=outputs_dir)

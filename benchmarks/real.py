"""Model quality on real Sentinel-2: the README pipeline at its defaults on the real crop tile.

`../shared/realdata/pixels/cropmaps_T31TEJ_2018/` holds nine real Sentinel-2 L2A dates of 2018 over a
2.3 x 3.5 km tile in southern France with EuroCrops parcel labels, cut east-west with a 50 m gap. This runs
`cube -> features -> chips -> train` on the west half, `cube -> features -> predict` on the east half, and
`evaluate` against the east half's labels, for the default deep model and for `--architecture lightgbm` on
the same chips. Every stage runs at its defaults; only the legend is given (`--classes classes.yaml
--class-column class_id`), as a new user would. It prints per-class IoU, the mIoU over the classes with at
least 30 test pixels (a class with a handful of pixels in one or two parcels says nothing), pixel accuracy and
training time. `--json FILE` keeps the figures; `--readme` rewrites the README's generated real-data block.

Run: .venv/bin/python -m benchmarks.real [--json docs/real-figures.json --readme]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import README, publish
from deep_lulc.shared.products.evaluation import read_metrics
from deep_lulc.shared.stage.logs import configure_logging
from deep_lulc.stages.chips import stage as chips
from deep_lulc.stages.chips.params import ChipsParams
from deep_lulc.stages.cube import stage as cube
from deep_lulc.stages.cube.params import CubeParams
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams
from deep_lulc.stages.features import stage as features
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.predict import stage as predict
from deep_lulc.stages.predict.params import PredictParams
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.params import TrainParams

TILE = README.parent.parent / "shared" / "realdata" / "pixels" / "cropmaps_T31TEJ_2018"
START, END = "<!-- real-figures:start -->", "<!-- real-figures:end -->"
MIN_TEST_PIXELS = 30
MODELS = {"deep": TrainParams(), "lightgbm": TrainParams(architecture="lightgbm")}


def _timed(call: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call()
    return result, round(time.perf_counter() - started, 1)


def prepare(tile: Path, folder: Path) -> dict[str, str]:
    """Cube and features of both halves and the west half's chips, each stage at its defaults."""
    period = CubeParams(start=dt.date(2018, 1, 1), end=dt.date(2018, 12, 31))
    stac = str(tile / "stac" / "catalog.json")
    hrefs: dict[str, str] = {}
    for half, aoi in (("west", "aoi_train.geojson"), ("east", "aoi_test.geojson")):
        built = cube.run(
            inputs={"stac": stac, "aoi": str(tile / "labels" / aoi)}, output=str(folder / f"cube-{half}"), params=period
        )
        made = features.run(
            inputs={"cube": built.catalog}, output=str(folder / f"features-{half}"), params=FeaturesParams()
        )
        hrefs[half] = made.catalog
    drawn = chips.run(
        inputs={"features": hrefs["west"], "labels": str(tile / "labels" / "train_labels.geojson")},
        output=str(folder / "chips"),
        params=ChipsParams(classes=str(tile / "classes.yaml"), class_column="class_id"),
    )
    hrefs["chips"] = drawn.catalog
    return hrefs


def score(tile: Path, folder: Path, hrefs: dict[str, str], name: str, params: TrainParams) -> dict[str, Any]:
    """Train one model on the west chips, map the east half, score the map against the east labels."""
    trained, seconds = _timed(
        lambda: train.run(inputs={"chips": hrefs["chips"]}, output=str(folder / f"model-{name}"), params=params)
    )
    mapped = predict.run(
        inputs={"model": trained.catalog, "features": hrefs["east"]},
        output=str(folder / f"prediction-{name}"),
        params=PredictParams(),
    )
    scored = evaluate.run(
        inputs={"prediction": mapped.catalog, "labels": str(tile / "labels" / "test_labels.geojson")},
        output=str(folder / f"evaluation-{name}"),
        params=EvaluateParams(class_column="class_id"),
    )
    _, metrics = read_metrics(scored.catalog)
    per_class = {n: v for n, v in metrics["per_class"].items() if v["support"]}
    scored_classes = [n for n, v in per_class.items() if v["support"] >= MIN_TEST_PIXELS]
    ious = [per_class[n]["iou"] or 0.0 for n in scored_classes]
    return {
        "iou": {n: v["iou"] for n, v in per_class.items()},
        "support": {n: v["support"] for n, v in per_class.items()},
        "miou": round(sum(ious) / len(ious), 4),
        "miou_all_classes": metrics["miou"],
        "scored_classes": scored_classes,
        "overall_accuracy": metrics["overall_accuracy"],
        "training_seconds": seconds,
        "validation_map_miou": trained.extra.get("miou"),
    }


def run_benchmark(tile: Path, folder: Path) -> dict[str, Any]:
    hrefs = prepare(tile, folder)
    models = {name: score(tile, folder, hrefs, name, params) for name, params in MODELS.items()}
    return {"tile": tile.name, "min_test_pixels": MIN_TEST_PIXELS, "models": models}


def table(data: dict[str, Any]) -> list[str]:
    deep, lightgbm = data["models"]["deep"], data["models"]["lightgbm"]

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = ["| class | test px | deep | LightGBM |", "|---|---:|---:|---:|"]
    for name, support in deep["support"].items():
        marker = "" if support >= data["min_test_pixels"] else " (not scored)"
        lines.append(f"| {name}{marker} | {support} | {cell(deep['iou'][name])} | {cell(lightgbm['iou'][name])} |")
    lines.append(
        f"| **mIoU** (classes with >= {data['min_test_pixels']} test px) | | **{deep['miou']:.3f}** | "
        f"**{lightgbm['miou']:.3f}** |"
    )
    lines.append(f"| pixel accuracy | | {deep['overall_accuracy']:.3f} | {lightgbm['overall_accuracy']:.3f} |")
    lines.append(f"| training time (s) | | {deep['training_seconds']:.0f} | {lightgbm['training_seconds']:.0f} |")
    return lines


def readme_block(data: dict[str, Any]) -> str:
    return "\n".join(
        [
            START,
            "Per-class IoU of each model's map of the east half of the real tile (never seen in training) against "
            "its parcel labels, both models trained on the same west-half chips with every stage at its "
            "defaults; written by `python -m benchmarks.real --json docs/real-figures.json --readme` "
            "(2-core machine).",
            "",
            *table(data),
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=Path, default=TILE, help="the real tile's folder (../shared/realdata/...)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the run (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's real-figures block")
    args = parser.parse_args()
    if not (args.tile / "stac" / "catalog.json").is_file():
        raise SystemExit(f"no real tile at {args.tile}: pass --tile with the cropmaps_T31TEJ_2018 folder")
    configure_logging(debug=False)
    folder = args.out or Path(tempfile.mkdtemp(prefix="deep-lulc-real-"))
    data = run_benchmark(args.tile, folder)
    print("\n".join(table(data)))
    deep, lightgbm = data["models"]["deep"], data["models"]["lightgbm"]
    difference, ratio = deep["miou"] - lightgbm["miou"], deep["miou"] / lightgbm["miou"]
    print(
        f"deep mIoU {deep['miou']:.3f} vs LightGBM {lightgbm['miou']:.3f} (difference {difference:+.3f}, "
        f"ratio {ratio:.3f})"
    )
    publish(data, json_path=args.json, block=readme_block(data) if args.readme else None, start=START, end=END)


if __name__ == "__main__":
    main()

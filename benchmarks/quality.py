"""Model quality as maps: the default deep model against LightGBM on the demo scene's unseen AOI.

Runs the demo (synthetic scene, training AOI -> chips -> the temporal U-Net and the LightGBM pixel
classifier -> both years' maps of the prediction AOI, which training never saw -> change -> evaluate)
and prints per-class IoU of both models' maps, training times, change precision/recall/F1 and the wall
time, from the stages' own result records. `--runs 2` runs it twice in separate folders and prints the
largest difference between the runs' figures (reproducibility). `--json FILE` keeps the figures;
`--readme` rewrites the README's generated demo-figures block from them.

Run: .venv/bin/python -m benchmarks.quality [--runs 2] [--json docs/demo-figures.json --readme]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import publish
from deep_lulc.shared.stage.logs import configure_logging
from deep_lulc.stages.demo import stage as demo
from deep_lulc.stages.demo.params import DemoParams

START, END = "<!-- demo-figures:start -->", "<!-- demo-figures:end -->"


def _record(folder: Path, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((folder / name / "result.json").read_text())["result"]
    return result


def figures(folder: Path, years: tuple[int, int], wall_s: float, timings: dict[str, float]) -> dict[str, Any]:
    """The figures a reader needs to believe the comparison, read back from what the stages recorded."""
    models: dict[str, Any] = {}
    folder = folder / "demo"  # the run folder of configs/demo.yaml (<output>/<name>), periods before and after
    for model, prefix in (("deep", "evaluation"), ("lightgbm", "evaluation-lightgbm")):
        models[model] = {
            str(year): {key: _record(folder, f"{prefix}-{period}")[key] for key in ("miou", "overall_accuracy", "iou")}
            for year, period in zip(years, ("before", "after"), strict=True)
        }
    change = _record(folder, "evaluation-change")
    trained = _record(folder, "model")
    areas = _record(folder, "area-change")["transitions"]
    truth = json.loads((folder / "sample-labelled" / "true-areas.json").read_text())["transitions_ha"]
    return {
        "years": list(years),
        "models": models,
        "training_seconds": {"deep": timings.get("train"), "lightgbm": timings.get("train-lightgbm")},
        "validation_map_miou": trained.get("miou"),
        "validation_chip_miou": trained.get("chip_miou"),
        "change": {key: change.get(key) for key in ("change_precision", "change_recall", "change_f1")},
        "change_areas": change_areas(areas, truth),
        "demo_seconds": round(wall_s, 1),
        "stage_seconds": timings,
    }


def change_areas(estimated: dict[str, Any], truth: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """Each change (from != to) the map shows or the truth holds: pixel count, estimate +- 95 % CI, truth."""
    names = {name for name in [*estimated, *truth] if name.split("_to_")[0] != name.split("_to_")[1]}
    rows = {}
    for name in sorted(names, key=lambda n: (-truth.get(n, 0.0), n)):
        record = estimated.get(name, {})
        rows[name] = {
            "mapped_ha": record.get("mapped_ha", 0.0),
            "estimated_ha": record.get("estimated_ha"),
            "ci95_ha": record.get("ci95_ha"),
            "true_ha": round(truth.get(name, 0.0), 6),
        }
    return rows


def area_table(data: dict[str, Any], *, rows: int = 8) -> list[str]:
    """The largest true changes: what the map counts, what the labelled sample estimates, what is true."""
    lines = ["| change | pixel count (ha) | error-adjusted (ha, 95 % CI) | true (ha) |", "|---|---:|---:|---:|"]
    for name, row in list(data["change_areas"].items())[:rows]:
        found = "not sampled" if row["estimated_ha"] is None else f"{row['estimated_ha']:.1f} ± {row['ci95_ha']:.1f}"
        lines.append(f"| {name.replace('_to_', ' → ')} | {row['mapped_ha']:.1f} | {found} | {row['true_ha']:.1f} |")
    return lines


def run_demo(folder: Path, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    result = demo.run(inputs={}, output=str(folder), params=DemoParams(seed=seed))
    wall = time.perf_counter() - started
    years = sorted(int(name.rsplit("-", 1)[1]) for name in result.extra["timings_s"] if name.startswith("predict-2"))
    return figures(folder, (years[0], years[-1]), wall, result.extra["timings_s"])


def table(data: dict[str, Any]) -> list[str]:
    years = [str(y) for y in data["years"]]
    deep, lightgbm = data["models"]["deep"], data["models"]["lightgbm"]
    names = sorted({name for year in years for name in deep[year]["iou"]})
    header = "| class | " + " | ".join(f"deep {y} | LightGBM {y}" for y in years) + " |"
    lines = [header, "|---|" + "---:|" * (2 * len(years))]

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    for name in names:
        cells = " | ".join(f"{cell(deep[y]['iou'].get(name))} | {cell(lightgbm[y]['iou'].get(name))}" for y in years)
        lines.append(f"| {name} | {cells} |")
    for key, label in (("miou", "**mIoU**"), ("overall_accuracy", "overall accuracy")):
        lines.append(
            f"| {label} | " + " | ".join(f"{cell(deep[y][key])} | {cell(lightgbm[y][key])}" for y in years) + " |"
        )
    return lines


def readme_block(data: dict[str, Any]) -> str:
    change, seconds = data["change"], data["training_seconds"]
    lines = [
        START,
        "Per-class IoU of each model's map of the prediction AOI (never seen in training) against that year's "
        "labels; written by `python -m benchmarks.quality --json docs/demo-figures.json --readme` "
        "from one demo run (seed 0, 2-core machine).",
        "",
        *table(data),
        "",
        f"- Training: deep model {seconds['deep']:.0f} s, LightGBM {seconds['lightgbm']:.0f} s; the whole demo "
        f"{data['demo_seconds']:.0f} s.",
        f"- Validation blocks of the training AOI as maps: mIoU {data['validation_map_miou']:.3f} "
        f"(on the chips themselves: {data['validation_chip_miou']:.3f}).",
        f"- Change {data['years'][0]} -> {data['years'][1]} against the labels' known changes: precision "
        f"{change['change_precision']:.3f}, recall {change['change_recall']:.3f}, F1 {change['change_f1']:.3f}.",
    ]
    lines += [
        "",
        f"Change areas {data['years'][0]} -> {data['years'][1]} from the demo's stratified sample of its change map "
        "(labelled from the synthetic truth, estimators of Olofsson et al. 2014), beside the map's pixel counts:",
        "",
        *area_table(data),
        "",
    ]
    if "max_run_difference" in data:
        lines.append(f"- Two runs of the demo differ by at most {data['max_run_difference']:.1e} in any figure above.")
    lines.append(END)
    return "\n".join(lines)


def _numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """Every model-quality number in the figures, by path (timings left out: they are not reproducible)."""
    out: dict[str, float] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if "seconds" not in key:
                out |= _numbers(value, f"{prefix}/{key}")
    elif isinstance(data, int | float) and not isinstance(data, bool):
        out[prefix] = float(data)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="demo runs (2: check reproducibility)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this file")
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's demo-figures block")
    args = parser.parse_args()
    configure_logging(debug=False)
    root = args.out or Path(tempfile.mkdtemp(prefix="deep-lulc-quality-"))
    runs = [run_demo(root / f"run-{index}", args.seed) for index in range(args.runs)]
    data = runs[0]
    if len(runs) > 1:
        first, second = _numbers(runs[0]), _numbers(runs[1])
        data["max_run_difference"] = max(abs(first[k] - second.get(k, float("inf"))) for k in first)
    print("\n".join(table(data)))
    print(readme_block(data).split("\n", 3)[-1].rsplit("\n", 1)[0].split("\n\n", 1)[-1])
    deep, lightgbm = data["models"]["deep"], data["models"]["lightgbm"]
    for year in map(str, data["years"]):
        print(
            f"{year}: deep mIoU {deep[year]['miou']:.3f} vs LightGBM {lightgbm[year]['miou']:.3f} "
            f"(ratio {deep[year]['miou'] / lightgbm[year]['miou']:.3f})"
        )
    publish(data, json_path=args.json, block=readme_block(data) if args.readme else None, start=START, end=END)


if __name__ == "__main__":
    main()

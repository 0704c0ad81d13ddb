"""The demo's report.html must be readable as a person opens it: at 100 % zoom in a real browser. Markup checks
cannot see a legend drawn 6 px high inside a picture, or a card twice as tall as its neighbours, so this builds a
report from tiny maps written through the product writers and the real `change` and `evaluate` stages, opens it
in headless Chromium (playwright-core from the STAC Browser test's cache) and measures what is drawn.

`python -m tests.contract.test_report_screenshot REPORT.html SHOT.png` screenshots any report (a real demo's) the
same way and prints the measurements.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio.raw
import pystac
import pytest
import shapely
from affine import Affine

from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import epsg_of, geobox, write_projection
from deep_lulc.shared.io.plots import confusion_png, loss_png
from deep_lulc.shared.io.preview import thumbnail_asset, true_colour_png
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.lulc.transitions import STABLE_COLOUR
from deep_lulc.shared.products.evaluation import ERROR_CLASSES
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeParams
from deep_lulc.stages.demo.report import write_report
from deep_lulc.stages.evaluate import stage as evaluate
from deep_lulc.stages.evaluate.params import EvaluateParams

from ..class_map_data import grid_bounds, write_class_map_catalog
from .test_stac_browser import HOW_TO_INSTALL, BrowserAssetsError, ensure_stac_browser, run_node_script

# 1.6 km x 1.2 km of 10 m pixels: the scale bar is then 200 m, so a bar sized for the wrong width shows.
GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 120, 160)
GROUND_WIDTH_M = 1600.0
FOREST, GRASSLAND, WATER, ARTIFICIAL, CULTIVATED = 2, 3, 5, 8, 1
YEARS = (2023, 2024)
VIEWPORT = {"width": 1280, "height": 900}
# Drives Chromium and reports what it drew; the Python side owns the assertions.
MEASURE_SCRIPT = r"""
import { createRequire } from "node:module";
import path from "node:path";
const config = JSON.parse(process.argv[2]);
const require = createRequire(path.join(config.modules, "package.json"));
const { chromium } = require("playwright-core");
const browser = await chromium.launch({ executablePath: config.chromium, args: ["--no-sandbox"] });
try {
  const context = await browser.newContext({ viewport: config.viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  await page.goto(config.url, { waitUntil: "load", timeout: 60000 });
  await page.waitForFunction(() => Array.from(document.images).every((img) => img.complete), null, { timeout: 60000 });
  const report = await page.evaluate(() => {
    const box = (node) => node.getBoundingClientRect();
    const rows = Array.from(document.querySelectorAll(".maps"), (row) =>
      Array.from(row.querySelectorAll(":scope > figure.map"), (figure) => {
        const img = figure.querySelector("img");
        const frame = box(img);
        const fit = Math.min(frame.width / img.naturalWidth, frame.height / img.naturalHeight);
        const bar = figure.querySelector(".scale .bar");
        const label = figure.querySelector(".scale .label");
        return {
          caption: figure.querySelector("figcaption")?.innerText ?? "",
          src: img.getAttribute("src"),
          loaded: img.complete && img.naturalWidth > 0,
          top: frame.top,
          drawnWidth: img.naturalWidth * fit,
          drawnHeight: img.naturalHeight * fit,
          barWidth: bar ? box(bar).width : null,
          scaleLabel: label ? label.innerText.trim() : null,
          legend: Array.from(figure.querySelectorAll(".legend li"), (entry) => {
            const name = entry.querySelector(".name");
            const swatch = entry.querySelector(".swatch");
            return {
              name: name.innerText.trim(),
              fontSize: parseFloat(getComputedStyle(name).fontSize),
              visible: box(name).height > 0,
              colour: getComputedStyle(swatch).backgroundColor,
              swatchWidth: box(swatch).width,
            };
          }),
        };
      }),
    );
    const headers = Array.from(document.querySelectorAll("table"), (table) =>
      Array.from(table.querySelectorAll("tr"))
        .filter((tr) => tr.querySelector("th"))
        .map((tr) => Array.from(tr.cells, (cell) => cell.innerText.trim())),
    );
    return { rows, headers, images: document.images.length, pageWidth: document.documentElement.scrollWidth };
  });
  report.pageErrors = pageErrors;
  await page.screenshot({ path: config.screenshot, fullPage: true });
  console.log(JSON.stringify(report));
} finally {
  await browser.close();
}
"""


def measure(report: Path, screenshot: Path) -> dict[str, Any]:
    """Open `report` at 100 % zoom in headless Chromium, take a full-page screenshot; returns what was drawn."""
    chromium, node = shutil.which("chromium"), shutil.which("node")
    if chromium is None or node is None:
        raise BrowserAssetsError(f"chromium or node is not on PATH: {HOW_TO_INSTALL}")
    modules = ensure_stac_browser()  # its node_modules hold playwright-core
    script = screenshot.parent / "measure-report.mjs"
    script.write_text(MEASURE_SCRIPT, encoding="utf-8")
    config = {
        "modules": str(modules),
        "chromium": chromium,
        "url": report.resolve().as_uri(),
        "viewport": VIEWPORT,
        "screenshot": str(screenshot),
    }
    return run_node_script(node, script, config)


# --- A tiny demo output, written through the product writers and the real stages --------------------------------


def pixel_box(row0: int, col0: int, row1: int, col1: int) -> shapely.Polygon:
    x0, y0 = GRID.affine @ (col0, row0)
    x1, y1 = GRID.affine @ (col1, row1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_labels(path: Path, boxes: list[tuple[tuple[int, int, int, int], int]]) -> str:
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array([pixel_box(*b) for b, _ in boxes], dtype=object)),
        field_data=[np.array([v for _, v in boxes], dtype=np.int32)],
        fields=["lulc"],
        geometry_type="Polygon",
        crs="EPSG:32633",
        driver="GPKG",
    )
    return str(path)


BEFORE = [((0, 0, 120, 70), FOREST), ((0, 70, 120, 160), GRASSLAND), ((80, 100, 110, 150), CULTIVATED)]
AFTER = [*BEFORE, ((20, 20, 50, 60), ARTIFICIAL)]


def burn(boxes: list[tuple[tuple[int, int, int, int], int]]) -> np.ndarray:
    values = np.zeros((GRID.height, GRID.width), dtype=np.uint8)
    for (row0, col0, row1, col1), value in boxes:
        values[row0:row1, col0:col1] = value
    return values


def a_map(boxes: list[tuple[tuple[int, int, int, int], int]], seed: int) -> np.ndarray:
    """The labels drawn as a map with mistakes: a lake the labels do not have, flipped pixels, a nodata corner."""
    rng = np.random.default_rng(seed)
    values = burn(boxes)
    values[60:75, 40:90] = WATER
    flips = rng.random(values.shape) < 0.05
    values[flips] = np.where(values[flips] == FOREST, GRASSLAND, FOREST)
    values[:8, 150:] = SLOVENIA.nodata
    return values


def write_features(directory: Path) -> str:
    """A features catalog as the report reads it: an item on GRID with a true-colour thumbnail."""
    rng = np.random.default_rng(7)
    rows, cols = np.mgrid[0 : GRID.height, 0 : GRID.width]
    bands = [
        np.clip(0.05 + 0.1 * np.sin(rows / (9 + i)) * np.cos(cols / 13) + rng.normal(0, 0.01, rows.shape), 0, 1)
        for i in range(3)
    ]
    folder = directory / "features-2024"
    true_colour_png(bands[0], bands[1], bands[2], folder / "preview.png")
    footprint = bounds_to_wgs84(epsg_of(GRID), grid_bounds(GRID))
    item = pystac.Item(
        "features-2024",
        footprint.__geo_interface__,
        list(footprint.bounds),
        None,
        {"start_datetime": "2024-01-01T00:00:00Z", "end_datetime": "2024-12-31T23:59:59Z"},
    )
    write_projection(item, GRID)
    item.add_asset("thumbnail", thumbnail_asset(folder / "preview.png", title="True colour"))
    catalog = pystac.Catalog("features-2024", "Hand-made features for the report")
    catalog.add_item(item)
    return str(save_self_contained(catalog, directory))


def write_model(directory: Path) -> str:
    """A model catalog as the report reads it: metrics.json, the loss curve and a confusion matrix."""
    folder = directory / "model-test"
    folder.mkdir(parents=True)
    names = [c.name for c in SLOVENIA.labelled[:3]]
    metrics = {
        "miou": 0.61,
        "per_class": {name: {"iou": 0.6} for name in names},
        "confusion_matrix": {"counts": [[50, 3, 1], [4, 40, 6], [0, 5, 30]]},
        "comparison": [{"class": name, "unet_iou": 0.6 + i / 10, "baseline_iou": 0.5} for i, name in enumerate(names)],
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    confusion_png(metrics, folder / "confusion_matrix.png")
    history = [{"epoch": e, "train_loss": 1 / e, "valid_loss": 1.2 / e, "miou": 0.1 * e} for e in range(1, 6)]
    loss_png(history, folder / "loss.png")
    item = pystac.Item(
        "model-test",
        None,
        None,
        None,
        {"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2023-12-31T23:59:59Z"},
    )
    for key in ("metrics", "confusion_matrix", "loss"):
        suffix = "json" if key == "metrics" else "png"
        item.add_asset(key, pystac.Asset(str(folder / f"{key}.{suffix}"), roles=["metadata"]))
    catalog = pystac.Catalog("model-test", "Hand-made model for the report")
    catalog.add_item(item)
    return str(save_self_contained(catalog, directory))


def tiny_report(root: Path) -> Path:
    """report.html over hand-made features, model and maps, and the real change and evaluate stages' outputs."""
    root.mkdir(parents=True)
    labels = {
        2023: write_labels(root / "labels-2023.gpkg", BEFORE),
        2024: write_labels(root / "labels-2024.gpkg", AFTER),
    }
    predictions = {
        year: write_class_map_catalog(
            root / f"prediction-{year}",
            a_map(boxes, seed=year),
            grid=GRID,
            item_id=f"prediction-{year}",
            start=f"{year}-01-01T00:00:00Z",
            end=f"{year}-12-31T23:59:59Z",
        )
        for year, boxes in zip(YEARS, (BEFORE, AFTER), strict=True)
    }
    params = EvaluateParams(block_size=64)
    results: dict[str, StageResult] = {
        "features-2024": StageResult("features", write_features(root / "features"), ("features-2024",)),
        "train": StageResult("train", write_model(root / "model"), ("model-test",)),
    }
    for year in YEARS:
        results[f"predict-{year}"] = StageResult("predict", predictions[year], (f"prediction-{year}",))
        results[f"evaluate-{year}"] = evaluate.run(
            inputs={"prediction": predictions[year], "labels": labels[year]},
            output=str(root / f"evaluation-{year}"),
            params=params,
        )
    results["change"] = change.run(
        inputs={"before": predictions[2023], "after": predictions[2024]},
        output=str(root / "change"),
        params=ChangeParams(block_size=64, method="raw"),
    )
    results["evaluate-change"] = evaluate.run(
        inputs={"prediction": results["change"].catalog, "labels": labels[2024], "before_labels": labels[2023]},
        output=str(root / "evaluation-change"),
        params=params,
    )
    timings = {"synth": 1.5, "train": 12.0, "predict-2023": 3.0}
    return Path(write_report(str(root), results, years=YEARS, timings=timings))


def expected_colours() -> dict[str, tuple[int, int, int]]:
    """Every legend name the report may show, with the colour its class has in the data."""
    colours = {c.name: c.rgb for c in SLOVENIA.classes} | {c.name: c.rgb for c in ERROR_CLASSES}
    colours |= {f"changed to {c.name}": c.rgb for c in SLOVENIA.classes} | {"unchanged": STABLE_COLOUR}
    colours["no data"] = (255, 255, 255)  # drawn transparent on a white frame
    return colours


def _rgb(css: str) -> tuple[int, int, int]:
    found = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(?:, [\d.]+)?\)", css)
    assert found is not None, css
    return int(found[1]), int(found[2]), int(found[3])


def _metres(label: str) -> float:
    found = re.fullmatch(r"(\d+) (m|km)", label)
    assert found is not None, f"scale label {label!r} is not a round length in m or km"
    return float(found[1]) * (1000 if found[2] == "km" else 1)


def test_report_is_readable_at_100_percent(tmp_path: Path) -> None:
    report = tiny_report(tmp_path / "demo")
    screenshot = tmp_path / "report.png"
    try:
        drawn = measure(report, screenshot)
    except BrowserAssetsError as error:
        pytest.fail(str(error))
    if os.environ.get("DEEP_LULC_REPORT_SCREENSHOT"):  # a copy to look at, e.g. /tmp/work/report-screenshot.png
        shutil.copyfile(screenshot, os.environ["DEEP_LULC_REPORT_SCREENSHOT"])
    assert screenshot.stat().st_size > 20_000
    assert not drawn["pageErrors"], drawn["pageErrors"]
    assert drawn["pageWidth"] <= VIEWPORT["width"], "the page scrolls sideways"

    rows = drawn["rows"]
    # Maps: true colour, change and the two predictions, two a row; then labels | prediction | errors per year.
    assert [len(row) for row in rows] == [4, 3, 3], [[card["caption"] for card in row] for row in rows]
    colours = expected_colours()
    for row in rows:
        heights = [card["drawnHeight"] for card in row]
        assert max(heights) - min(heights) <= 1, f"map heights differ in a row: {heights}"
        lines = {round(card["top"]) for card in row}
        assert len(lines) == (len(row) + 2) // 3, f"maps are not side by side: {sorted(lines)}"
        for card in row:
            assert card["loaded"], card["src"]
            assert card["drawnWidth"] >= 300, f"{card['caption']}: drawn {card['drawnWidth']:.0f} px wide"
            metres = _metres(card["scaleLabel"] or "")
            metres_per_px = GROUND_WIDTH_M / card["drawnWidth"]
            assert card["barWidth"] * metres_per_px == pytest.approx(metres, rel=0.05), card
            for entry in card["legend"]:
                assert entry["visible"], entry
                assert entry["fontSize"] >= 11, entry
                assert entry["swatchWidth"] >= 10, entry
                assert entry["name"] in colours, entry
                assert _rgb(entry["colour"]) == colours[entry["name"]], entry
    captions = {card["caption"]: card for row in rows for card in row}
    predicted = captions["Predicted land cover, 2023"]["legend"]
    assert [e["name"] for e in predicted] == ["CultivatedLand", "Forest", "Grassland", "Water", "no data"], predicted
    labelled = captions["Reference labels, 2024"]["legend"]
    assert [e["name"] for e in labelled] == ["CultivatedLand", "Forest", "Grassland", "ArtificialSurface"], labelled
    errors = [e["name"] for e in captions["Errors of the 2023 map"]["legend"]]
    assert errors[:2] == ["correct", "wrong"], errors
    changes = [e["name"] for e in captions["Change 2023 → 2024"]["legend"]]
    assert changes[0] == "unchanged", changes
    assert "changed to ArtificialSurface" in changes, changes
    assert not captions["True colour, prediction AOI, 2024 (interpolated features)"]["legend"]

    assert drawn["headers"], "no tables"
    for table in drawn["headers"]:
        for header in table:
            assert any(header), f"a table has an empty header row: {drawn['headers']}"


if __name__ == "__main__":  # screenshot a real demo's report: REPORT.html SHOT.png
    print(json.dumps(measure(Path(sys.argv[1]), Path(sys.argv[2]).resolve()), indent=1))

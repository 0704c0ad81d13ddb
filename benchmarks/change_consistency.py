"""Spurious change in a series of yearly maps: `change --method raw | joint | consistent` on land of known truth.

Synthetic land of parcels (Voronoi cells of a few classes) is mapped for `--years` years by a simulated
classifier whose errors look like a real one's: independent noise per pixel and year, spatially correlated
patches where a class is confused with a similar one (Cropland/Grassland, Forest/Shrubland, ...) that move
from year to year, and mixed pixels on parcel borders whose class probabilities blend both parcels with a
weight that differs every year. Most parcels never change; a few change class once, in a random year, and
stay changed. Each year is written as a prediction item with its probabilities COG, through the product
writers `predict` uses, and the real change stage compares the series with each method.

Reported per method, pixel-level: the spurious-change rate (the share of truly stable pixels, stable in
every year, flagged as changed: per consecutive pair, averaged, and in any pair) and the change precision
and recall over every pair on the land that did change; the table shows their means over `--runs` series
drawn from consecutive seeds (one series varies a lot with its few changing parcels). Same seeds, same
numbers.

Run: .venv/bin/python -m benchmarks.change_consistency [--size 384 --years 4 --seed 0 --runs 3 --json PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from affine import Affine
from scipy import ndimage
from scipy.spatial import cKDTree

from benchmarks.figures import publish
from deep_lulc.shared.geo.grids import GeoBox, geobox
from deep_lulc.shared.io.stac import save_self_contained
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.products.class_map import PredictionWriters, percent, prediction_item
from deep_lulc.stages.change import stage as change
from deep_lulc.stages.change.params import ChangeInputs, ChangeParams

LABELLED = [c.value for c in SLOVENIA.labelled]
NAMES = {c.name: c.value for c in SLOVENIA.labelled}
# The land's classes and how common they are.
COVER = {
    "CultivatedLand": 0.3,
    "Forest": 0.3,
    "Grassland": 0.22,
    "Shrubland": 0.08,
    "Water": 0.04,
    "Wetlands": 0.02,
    "ArtificialSurface": 0.04,
}
# What a classifier confuses each class with.
SIMILAR = {
    "CultivatedLand": "Grassland",
    "Grassland": "CultivatedLand",
    "Forest": "Shrubland",
    "Shrubland": "Forest",
    "Water": "Wetlands",
    "Wetlands": "Water",
    "ArtificialSurface": "Bareland",
}
# What a parcel that changes becomes.
BECOMES = {
    "CultivatedLand": ["Grassland", "ArtificialSurface"],
    "Forest": ["Grassland", "Shrubland"],
    "Grassland": ["CultivatedLand", "ArtificialSurface", "Shrubland"],
    "Shrubland": ["Forest", "Grassland"],
    "Water": ["Wetlands"],
    "Wetlands": ["Grassland"],
    "ArtificialSurface": ["Bareland"],
}
PARCEL_PX = 28  # typical parcel side: ~8 ha at 10 m
CHANGING_PARCELS = 0.12
BLOCK = 256  # the prediction items are written window by window, as predict streams them


@dataclass(frozen=True)
class Land:
    """The truth: each year's class value per pixel."""

    years: list[np.ndarray]


def make_land(size: int, years: int, rng: np.random.Generator) -> Land:
    count = max(4, (size // PARCEL_PX) ** 2)
    seeds = rng.uniform(0, size, size=(count, 2))
    rows, cols = np.mgrid[0:size, 0:size]
    _, parcels = cKDTree(seeds).query(np.column_stack([rows.ravel() + 0.5, cols.ravel() + 0.5]))
    parcels = parcels.reshape(size, size)
    names = list(COVER)
    first = rng.choice(len(names), size=count, p=np.array(list(COVER.values())) / sum(COVER.values()))
    classes = np.array([NAMES[names[k]] for k in first])
    truth = [classes[parcels]]
    changing = rng.random(count) < CHANGING_PARCELS
    when = rng.integers(1, years, size=count)  # the first year that shows the new class
    became = np.array([NAMES[str(rng.choice(BECOMES[names[k]]))] for k in first])
    for year in range(1, years):
        now = np.where(changing & (when <= year), became, classes)
        truth.append(now[parcels])
    return Land(truth)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian random field of unit standard deviation, correlated over about `sigma` px."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
    return np.asarray(field / field.std())


def classify(truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One year's class probabilities, (labelled classes, rows, cols), as an imperfect classifier gives them."""
    n = len(LABELLED)
    index = {value: k for k, value in enumerate(LABELLED)}
    similar = np.array([index[NAMES[SIMILAR.get(c.name, c.name)]] for c in SLOVENIA.labelled])
    own = np.vectorize(index.__getitem__)(truth)

    def logits_for(classes: np.ndarray) -> np.ndarray:
        logits = rng.normal(0.0, 0.9, size=(n, *classes.shape))  # per pixel and year
        rows, cols = np.indices(classes.shape)
        logits[classes, rows, cols] += 4.0
        logits[similar[classes], rows, cols] += 1.5  # a similar class is always somewhat likely
        # Patches of confusion: where this year's field is high, the similar class wins more often than not.
        confusion = np.clip(smooth_field(classes.shape, rng, sigma=6.0) - 1.1, 0, None) * 4.0
        logits[similar[classes], rows, cols] += confusion
        return logits

    probabilities = _softmax(logits_for(own))
    # Mixed pixels: along parcel borders, the neighbouring parcel's class blends in, by a weight that differs
    # from year to year.
    highest, lowest = ndimage.maximum_filter(own, size=3), ndimage.minimum_filter(own, size=3)
    neighbour = np.where(highest != own, highest, lowest)
    border = neighbour != own
    if border.any():
        weight = rng.uniform(0.25, 0.75, size=truth.shape) * border
        probabilities = (1 - weight) * probabilities + weight * _softmax(logits_for(neighbour))
    return np.asarray(probabilities)


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=0))
    return np.asarray(exp / exp.sum(axis=0))


def write_year(root: Path, grid: GeoBox, probabilities: np.ndarray, year: int) -> str:
    """A prediction catalog as `predict --probabilities` writes it: classes and uint8-percent probabilities."""
    identifier = f"prediction-{year}"
    folder = root / identifier
    folder.mkdir(parents=True)
    full = np.zeros((max(LABELLED) + 1, *probabilities.shape[1:]))
    full[LABELLED] = probabilities
    observed = np.ones(probabilities.shape[1:], dtype=bool)
    classes = np.array(LABELLED, dtype=np.uint8)[probabilities.argmax(axis=0)]
    values = percent(full, LABELLED, observed)
    writers = PredictionWriters(folder, grid, SLOVENIA, probabilities=True)
    for row in range(0, grid.height, BLOCK):
        for col in range(0, grid.width, BLOCK):
            rows, cols = slice(row, row + BLOCK), slice(col, col + BLOCK)
            writers.write_classes(classes[rows, cols], row=row, col=col)
            writers.write_probabilities(values[:, rows, cols], row=row, col=col)
    writers.finish()
    item = prediction_item(
        identifier,
        folder=folder,
        grid=grid,
        scheme=SLOVENIA,
        period=(f"{year}-01-01T00:00:00Z", f"{year}-12-31T23:59:59Z"),
        derived_from=["https://example.com/simulated-classifier.json"],
        class_pixels=writers.pixel_counts(),
        probabilities=True,
    )
    catalog = pystac.Catalog(id="prediction", description=f"Simulated classifier, {year}")
    catalog.add_item(item)
    return str(save_self_contained(catalog, root))


def changed_masks(catalog: str) -> list[np.ndarray]:
    """Each pair's changed pixels, in time order, read back from the change COGs."""
    n = len(LABELLED)
    masks = []
    items = sorted(
        pystac.Catalog.from_file(catalog).get_items(recursive=True), key=lambda i: i.properties["start_datetime"]
    )
    for item in items:
        with rasterio.open(item.assets["change"].get_absolute_href()) as dataset:
            codes = dataset.read(1).astype(np.int64)
        masks.append((codes > 0) & ((codes - 1) // n != (codes - 1) % n))
    return masks


def score(masks: list[np.ndarray], land: Land) -> dict[str, float]:
    """Spurious change on truly stable land, precision and recall of change, pooled over pairs."""
    truth = land.years
    stable = np.all([year == truth[0] for year in truth], axis=0)
    real = [truth[t] != truth[t + 1] for t in range(len(truth) - 1)]
    spurious = [float(mask[stable].mean()) for mask in masks]
    flagged = sum(int(mask.sum()) for mask in masks)
    hits = sum(int((mask & truly).sum()) for mask, truly in zip(masks, real, strict=True))
    relevant = sum(int(truly.sum()) for truly in real)
    return {
        "spurious_per_pair": round(float(np.mean(spurious)), 5),
        "spurious_any_pair": round(float(np.any(masks, axis=0)[stable].mean()), 5),
        "precision": round(hits / flagged, 4) if flagged else 1.0,
        "recall": round(hits / relevant, 4) if relevant else 1.0,
        "flagged_px": flagged,
        "stable_px": int(stable.sum()),
        "changed_px": relevant,
    }


METHODS: dict[str, dict[str, Any]] = {
    "raw": {"method": "raw"},
    "joint": {"method": "joint"},
    "consistent": {"method": "consistent"},
    "joint, no cleaning": {"method": "joint", "opening_radius": 0, "min_mapping_unit": 0.0},
    "consistent, no cleaning": {"method": "consistent", "opening_radius": 0, "min_mapping_unit": 0.0},
    "consistent, opening radius 1": {"method": "consistent", "opening_radius": 1},
}


def run(size: int, years: int, seed: int, rates: list[float]) -> dict[str, Any]:
    """Every method on one synthetic series drawn from `seed`."""
    rng = np.random.default_rng(seed)
    land = make_land(size, years, rng)
    grid = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), size, size)
    methods = dict(METHODS)
    for rate in rates:
        methods[f"consistent, change rate {rate:g}"] = {"method": "consistent", "change_rate": rate}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        catalogs = [write_year(root / f"y{t}", grid, classify(land.years[t], rng), 2020 + t) for t in range(years)]
        for name, options in methods.items():
            began = time.perf_counter()
            result = change.run(
                inputs=ChangeInputs(maps=tuple(catalogs)),
                output=str(root / f"change-{len(results)}"),
                params=ChangeParams(**options),
            )
            seconds = round(time.perf_counter() - began, 2)
            results[name] = {**score(changed_masks(result.catalog), land), "seconds": seconds}
    return results


def report(size: int, years: int, seeds: list[int], rates: list[float]) -> dict[str, Any]:
    """The figures of every seed, and per method their mean over the seeds."""
    started = time.perf_counter()
    runs = {seed: run(size, years, seed, rates) for seed in seeds}
    first = runs[seeds[0]]
    mean = {
        name: {key: round(float(np.mean([runs[s][name][key] for s in seeds])), 5) for key in first[name]}
        for name in first
    }
    return {
        "size": size,
        "years": years,
        "seeds": seeds,
        "default_change_rate": ChangeParams().change_rate,
        "mean": mean,
        "runs": {str(seed): figures for seed, figures in runs.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


def table(figures: dict[str, Any]) -> str:
    methods = figures["mean"]
    first = next(iter(methods.values()))
    seeds = figures["seeds"]
    lines = [
        f"{figures['size']} x {figures['size']} px, {figures['years']} years, seeds {seeds[0]}..{seeds[-1]} "
        f"(means): {first['stable_px']:.0f} truly stable px, {first['changed_px']:.0f} truly changed px-pairs; "
        f"default --change-rate {figures['default_change_rate']:g}",
        f"{'method':<32} {'spurious/pair':>13} {'spurious any':>12} {'precision':>9} {'recall':>7} {'seconds':>7}",
    ]
    for name, row in methods.items():
        lines.append(
            f"{name:<32} {100 * row['spurious_per_pair']:>12.2f}% {100 * row['spurious_any_pair']:>11.2f}% "
            f"{row['precision']:>9.3f} {row['recall']:>7.3f} {row['seconds']:>7.1f}"
        )
    return "\n".join(lines)


DOC = Path(__file__).resolve().parent.parent / "docs" / "outputs.md"
START, END = "<!-- change-figures:start -->", "<!-- change-figures:end -->"


def doc_block(figures: dict[str, Any]) -> str:
    """The table of docs/outputs.md: every method's spurious-change rate, precision and recall."""
    methods = figures["mean"]
    first = next(iter(methods.values()))
    seeds = figures["seeds"]
    lines = [
        START,
        f"Written by `python -m benchmarks.change_consistency --json docs/change-figures.json --doc`: "
        f"{figures['size']} x {figures['size']} px of simulated land mapped for {figures['years']} years by a "
        f"simulated classifier, means over seeds {seeds[0]}..{seeds[-1]} ({first['stable_px']:,.0f} truly stable "
        f"px, {first['changed_px']:,.0f} truly changed px-pairs); default `--change-rate` "
        f"{figures['default_change_rate']:g}.",
        "",
        "| method | spurious change, per pair | in any pair | precision | recall |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in methods.items():
        lines.append(
            f"| {name} | {100 * row['spurious_per_pair']:.2f} % | {100 * row['spurious_any_pair']:.2f} % | "
            f"{row['precision']:.3f} | {row['recall']:.3f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=384, help="side of the synthetic land, px (10 m)")
    parser.add_argument("--years", type=int, default=4, help="yearly maps in the series (at least 3)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--runs", type=int, default=3, help="series drawn, from seeds --seed, --seed + 1, ...")
    parser.add_argument(
        "--rates", type=float, nargs="*", default=[0.05, 0.2, 0.8], help="further --change-rate values to compare"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--doc", action="store_true", help="rewrite the figures block of docs/outputs.md")
    args = parser.parse_args()
    if args.years < 3:
        parser.error("--years must be at least 3: the point is a series")
    figures = report(args.size, args.years, list(range(args.seed, args.seed + max(1, args.runs))), args.rates)
    print(table(figures))
    block = doc_block(figures) if args.doc else None
    publish(figures, json_path=args.json, block=block, start=START, end=END, document=DOC)


if __name__ == "__main__":
    main()

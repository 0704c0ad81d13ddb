"""The area estimators, checked against their source and against the truth: the worked example of Olofsson
et al. (2014), the coverage of the 95 % intervals over many samples of a map whose truth is known, and
`sample`'s peak memory as the map grows.

Run: .venv/bin/python -m benchmarks.area_estimation [--draws 1000] [--json docs/area-figures.json --doc]

The coverage draws the sample the way `sample` allocates it (`allocate`) and estimates with the function
`area` uses (`estimate`); the memory figures come from `benchmarks.sample_memory` (a fresh process per map).
`--doc` rewrites the figures block of docs/area-estimation.md from the JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.figures import publish
from benchmarks.sample_memory import measure as measure_memory
from deep_lulc.shared.lulc.estimation import allocate, estimate

DOC = Path(__file__).resolve().parent.parent / "docs" / "area-estimation.md"
START, END = "<!-- area-figures:start -->", "<!-- area-figures:end -->"
# Section 5 of the paper: strata deforestation, forest gain, stable forest, stable non-forest.
PAPER_PIXELS = np.array([200_000, 150_000, 3_200_000, 6_450_000])
PAPER_COUNTS = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
PAPER_TOTAL_HA = 900_000.0
PAPER_NAMES = ("deforestation", "forest gain", "stable forest", "stable non-forest")
# As printed in the paper: area +- 95 % CI (ha), user's and producer's accuracy +- 95 % CI.
PAPER_AREAS_HA = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]
PAPER_USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
PAPER_PRODUCERS = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]
PAPER_OVERALL = (0.95, 0.02)
CLASSES, SIDE, PARCEL = 3, 400, 20
SAMPLE_SIZE, SAMPLE_FLOOR = 2_000, 120


def units_of(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One (stratum, reference) pair per sample unit of a count matrix."""
    strata = np.repeat(np.repeat(np.arange(len(counts)), len(counts)), counts.ravel())
    reference = np.repeat(np.tile(np.arange(len(counts)), len(counts)), counts.ravel())
    return strata, reference


def worked_example() -> dict[str, Any]:
    strata, reference = units_of(PAPER_COUNTS)
    found = estimate(PAPER_PIXELS, np.arange(4), strata, reference, categories=4)
    rows = []
    for name, row in zip(PAPER_NAMES, found.categories, strict=True):
        assert row.users is not None
        assert row.producers is not None
        rows.append(
            {
                "stratum": name,
                "mapped_ha": round(row.mapped_share * PAPER_TOTAL_HA, 1),
                "area_ha": round(row.share.value * PAPER_TOTAL_HA, 1),
                "area_ci95_ha": round(row.share.ci95 * PAPER_TOTAL_HA, 1),
                "users": round(row.users.value, 4),
                "users_ci95": round(row.users.ci95, 4),
                "producers": round(row.producers.value, 4),
                "producers_ci95": round(row.producers.ci95, 4),
            }
        )
    return {"rows": rows, "overall": round(found.overall.value, 4), "overall_ci95": round(found.overall.ci95, 4)}


def simulated_change_map(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(mapped, true) transition indices of every pixel of a 400 x 400 px landscape of 3 classes: 20 px parcels,
    12 % of them change class; the map misclassifies 6 % of pixels in each year and misses 20 % of changes."""
    rng = np.random.default_rng(seed)
    before = rng.integers(0, CLASSES, size=(SIDE // PARCEL, SIDE // PARCEL))
    changed = rng.random(before.shape) < 0.12
    after = np.where(changed, (before + rng.integers(1, CLASSES, size=before.shape)) % CLASSES, before)
    before, after = (a.repeat(PARCEL, 0).repeat(PARCEL, 1) for a in (before, after))

    def misread(truth: np.ndarray) -> np.ndarray:
        wrong = (truth + rng.integers(1, CLASSES, size=truth.shape)) % CLASSES
        return np.where(rng.random(truth.shape) < 0.06, wrong, truth)

    mapped_before, mapped_after = misread(before), misread(after)
    missed = (before != after) & (rng.random(before.shape) < 0.2)
    mapped_after = np.where(missed, mapped_before, mapped_after)
    return (mapped_before * CLASSES + mapped_after).ravel(), (before * CLASSES + after).ravel()


def coverage(draws: int, *, seed: int = 42) -> dict[str, Any]:
    """Over `draws` seeded samples: how often each transition's 95 % interval holds its true area, and the
    mean absolute error of the estimate beside the pixel count's."""
    mapped, truth = simulated_change_map(seed)
    categories = CLASSES * CLASSES
    pixels = np.bincount(mapped, minlength=categories)
    true_pixels = np.bincount(truth, minlength=categories)
    order = np.argsort(mapped, kind="stable")
    starts = np.concatenate([[0], np.cumsum(pixels)])
    counts = allocate({h: int(pixels[h]) for h in range(categories)}, size=SAMPLE_SIZE, minimum=SAMPLE_FLOOR)
    covered = np.zeros(categories)
    errors = np.zeros(categories)
    for draw in range(draws):
        rng = np.random.default_rng(draw)
        strata, reference = [], []
        for stratum, taken in counts.items():
            chosen = order[starts[stratum] + rng.choice(pixels[stratum], taken, replace=False)]
            strata.append(np.full(taken, stratum))
            reference.append(truth[chosen])
        found = estimate(
            pixels, np.arange(categories), np.concatenate(strata), np.concatenate(reference), categories=categories
        )
        for k, row in enumerate(found.categories):
            error = abs(row.share.value * pixels.sum() - true_pixels[k])
            covered[k] += error <= row.share.ci95 * pixels.sum()
            errors[k] += error
    names = [f"{i}->{j}" for i in range(CLASSES) for j in range(CLASSES)]
    return {
        "draws": draws,
        "sample_size": int(sum(counts.values())),
        "min_per_stratum": SAMPLE_FLOOR,
        "transitions": {
            name: {
                "coverage": round(float(covered[k] / draws), 4),
                "true_px": int(true_pixels[k]),
                "mapped_px": int(pixels[k]),
                "mean_abs_error_estimate_px": round(float(errors[k] / draws), 1),
                "abs_error_pixel_count_px": int(abs(pixels[k] - true_pixels[k])),
            }
            for k, name in enumerate(names)
        },
    }


def doc_block(data: dict[str, Any]) -> str:
    example, cover = data["worked_example"], data["coverage"]
    lines = [
        START,
        "Written by `python -m benchmarks.area_estimation --json docs/area-figures.json --doc` (2-core machine).",
        "",
        "**The worked example of Olofsson et al. (2014, section 5)**, ours beside the paper's printed figures:",
        "",
        "| stratum | mapped ha | estimated ha ± 95 % CI | paper | user's acc. | paper | producer's acc. | paper |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row, area, users, producers in zip(example["rows"], PAPER_AREAS_HA, PAPER_USERS, PAPER_PRODUCERS, strict=True):
        lines.append(
            f"| {row['stratum']} | {row['mapped_ha']:,.0f} | {row['area_ha']:,.0f} ± {row['area_ci95_ha']:,.0f} | "
            f"{area[0]:,} ± {area[1]:,} | {row['users']:.3f} ± {row['users_ci95']:.3f} | {users[0]:.2f} ± "
            f"{users[1]:.2f} | {row['producers']:.3f} ± {row['producers_ci95']:.3f} | {producers[0]:.2f} ± "
            f"{producers[1]:.2f} |"
        )
    lines += [
        "",
        f"Overall accuracy {example['overall']:.3f} ± {example['overall_ci95']:.3f} (paper: "
        f"{PAPER_OVERALL[0]:.2f} ± {PAPER_OVERALL[1]:.2f}).",
        "",
        f"**Coverage**: {cover['draws']:,} seeded samples ({cover['sample_size']:,} points, at least "
        f"{cover['min_per_stratum']} per stratum) of a simulated 3-class change map whose truth is known for every "
        "pixel (6 % misclassified per year, 20 % of changes missed):",
        "",
        "| transition | true px | mapped px | 95 % CI covers the truth | mean abs. error, estimate | abs. error, "
        "pixel count |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in cover["transitions"].items():
        lines.append(
            f"| {name} | {row['true_px']:,} | {row['mapped_px']:,} | {100 * row['coverage']:.1f} % | "
            f"{row['mean_abs_error_estimate_px']:,.0f} px | {row['abs_error_pixel_count_px']:,} px |"
        )
    lines += [
        "",
        "**`sample`'s memory** as the map grows (a fresh process per map; peak RSS as a ratio to the smallest "
        "map's, measured in the same run):",
        "",
        "| edge px | pixels | seconds | peak RSS MiB | × smallest |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in data["sample_memory"]:
        lines.append(
            f"| {row['edge_px']:,} | {row['pixels']:,} | {row['seconds']} | {row['peak_rss_mib']} | "
            f"{row['ratio_to_smallest']} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=1_000, help="Samples for the coverage figures.")
    parser.add_argument("--edges", default="1024,4096,16384", help="Map edges for the memory figures.")
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    parser.add_argument("--doc", action="store_true", help="Rewrite the figures block of docs/area-estimation.md.")
    args = parser.parse_args()
    data = {
        "worked_example": worked_example(),
        "coverage": coverage(args.draws),
        "sample_memory": measure_memory([int(edge) for edge in args.edges.split(",")]),
    }
    block = doc_block(data)
    print(block)
    publish(data, json_path=args.json, block=block if args.doc else None, start=START, end=END, document=DOC)


if __name__ == "__main__":
    main()

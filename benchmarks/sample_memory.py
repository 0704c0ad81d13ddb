"""`deep-lulc sample` keeps its memory flat as the map grows: it counts and draws window by window.

Run: .venv/bin/python -m benchmarks.sample_memory [--edges 1024,4096,16384] [--json PATH]

For each edge, a tiled, compressed GeoTIFF of blocky class values (edge x edge px, 10 m) is written, and
`sample` runs on it in a fresh process that reports its own peak RSS (VmHWM). Printed per edge: pixels, file
size, seconds and peak RSS, and the ratio of each peak to the smallest map's peak (the baseline of the same
run). A map held whole would grow the peak with the pixels (16k px: 256 MiB of codes alone); flat means the
ratio stays near 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

CHILD = """
import json, sys
from deep_lulc.stages.sample import stage
from deep_lulc.stages.sample.params import SampleParams
from benchmarks.measure import peak_rss_mib
result = stage.run(inputs={"map": sys.argv[1]}, output=sys.argv[2], params=SampleParams(size=1000))
print(json.dumps({"points": result.extra["points"], "peak_rss_mib": peak_rss_mib()}))
"""
BLOCK = 2048


def write_map(path: Path, edge: int, *, seed: int = 0) -> None:
    """Classes 1-9 in 64 px parcels, with a rare class (9) in a few of them, written block by block."""
    rng = np.random.default_rng(seed)
    cells = -(-edge // 64)
    parcels = rng.choice(np.arange(1, 9), size=(cells, cells)).astype(np.uint8)
    parcels[rng.random((cells, cells)) < 0.01] = 9
    profile = {
        "driver": "GTiff",
        "width": edge,
        "height": edge,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:32633",
        "transform": Affine(10, 0, 500_000, 0, -10, 5_200_000),
        "nodata": 0,
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dataset:
        for row in range(0, edge, BLOCK):
            for col in range(0, edge, BLOCK):
                height, width = min(BLOCK, edge - row), min(BLOCK, edge - col)
                block = parcels[row // 64 : -(-(row + height) // 64), col // 64 : -(-(col + width) // 64)]
                values = block.repeat(64, 0).repeat(64, 1)
                top, left = row % 64, col % 64
                dataset.write(
                    values[top : top + height, left : left + width], 1, window=Window(col, row, width, height)
                )


def measure(edges: list[int]) -> list[dict[str, Any]]:
    """Peak RSS of `sample` on a map of each edge, with its ratio to the first (smallest) map's."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for edge in edges:
            path = root / f"map-{edge}.tif"
            write_map(path, edge)
            started = time.perf_counter()
            completed = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), str(root / f"sample-{edge}")],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds = time.perf_counter() - started
            report = json.loads(completed.stdout.strip().splitlines()[-1])
            rows.append(
                {
                    "edge_px": edge,
                    "pixels": edge * edge,
                    "file_mib": round(path.stat().st_size / 2**20, 1),
                    "seconds": round(seconds, 1),
                    "peak_rss_mib": round(report["peak_rss_mib"], 1),
                    "points": report["points"],
                }
            )
            path.unlink()
    for row in rows:
        row["ratio_to_smallest"] = round(row["peak_rss_mib"] / rows[0]["peak_rss_mib"], 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", default="1024,4096,16384", help="Map edges in px, comma-separated.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    rows = measure([int(edge) for edge in args.edges.split(",")])
    print(f"{'edge px':>8}{'pixels':>14}{'file MiB':>10}{'seconds':>9}{'peak RSS MiB':>14}{'x smallest':>12}")
    for row in rows:
        print(
            f"{row['edge_px']:>8}{row['pixels']:>14,}{row['file_mib']:>10}{row['seconds']:>9}"
            f"{row['peak_rss_mib']:>14}{row['ratio_to_smallest']:>12}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"sample_memory": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

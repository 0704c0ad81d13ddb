"""Throughput and memory of `deep-lulc chips`: 1,000 chips of 128 px from a 23-date x 9-channel store.

Run: .venv/bin/python -m benchmarks.chips
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio.raw
import pystac
import rioxarray  # noqa: F401
import shapely
import xarray as xr
from affine import Affine
from shapely.geometry import mapping

from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import geobox, write_projection
from deep_lulc.shared.products.zarr_store import ZARR_MEDIA_TYPE
from deep_lulc.stages.features.indices import CHANNELS

SIDE = 1024
DATES = 23
CHIPS = 1000
SIZE = 128
ORIGIN = (500_000.0, 5_100_000.0)

_CHILD = """
import json, sys, time
from deep_lulc.stages.chips import stage
from deep_lulc.stages.chips.params import ChipsParams
started = time.perf_counter()
result = stage.run(inputs={"features": sys.argv[1], "labels": sys.argv[2]}, output=sys.argv[3],
                   params=ChipsParams(size=int(sys.argv[4]), count=int(sys.argv[5]), sampling="random",
                                      min_labelled=0.0, val_fraction=0.0))
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_rss_mib": peak / 1024, "chips": len(result.items)}))
"""


def make_features_catalog(folder: Path) -> str:
    """A features item like the stage writes: smooth random values, 256 px chunks."""
    rng = np.random.default_rng(0)
    coarse = rng.uniform(0.0, 0.4, (DATES, len(CHANNELS), SIDE // 16, SIDE // 16)).astype(np.float32)
    values = coarse.repeat(16, axis=2).repeat(16, axis=3)
    values += rng.normal(0.0, 0.01, values.shape).astype(np.float32)
    transform = Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    times = np.array(
        [np.datetime64("2023-01-01") + np.timedelta64(16 * k, "D") for k in range(DATES)], "datetime64[ns]"
    )
    dataset = xr.Dataset(
        {
            "features": (("time", "channel", "y", "x"), values),
            "valid_count": (("y", "x"), np.full((SIDE, SIDE), 12, dtype=np.int16)),
        },
        coords={
            "time": times,
            "channel": list(CHANNELS),
            "y": ORIGIN[1] - 10.0 * (np.arange(SIDE) + 0.5),
            "x": ORIGIN[0] + 10.0 * (np.arange(SIDE) + 0.5),
        },
    ).rio.write_crs("EPSG:32633")
    item_dir = folder / "features-bench"
    item_dir.mkdir(parents=True)
    encoding = {"features": {"chunks": (DATES, len(CHANNELS), 256, 256)}, "valid_count": {"chunks": (256, 256)}}
    dataset.to_zarr(item_dir / "features.zarr", zarr_format=2, consolidated=True, encoding=encoding)
    bounds = (ORIGIN[0], ORIGIN[1] - 10.0 * SIDE, ORIGIN[0] + 10.0 * SIDE, ORIGIN[1])
    footprint = bounds_to_wgs84(32633, bounds)
    item = pystac.Item(
        id="features-bench",
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=None,
        properties={"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2023-12-31T23:59:59Z"},
    )
    write_projection(item, geobox(32633, transform, SIDE, SIDE))
    item.add_asset("data", pystac.Asset(str(item_dir / "features.zarr"), media_type=ZARR_MEDIA_TYPE, roles=["data"]))
    catalog = pystac.Catalog(id="features", description="benchmark features")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json")


def make_labels(path: Path) -> str:
    """Square parcels of 32 x 32 px with random classes, as a GeoPackage."""
    rng = np.random.default_rng(1)
    step = 320.0
    cells = [
        shapely.box(ORIGIN[0] + i * step, ORIGIN[1] - (j + 1) * step, ORIGIN[0] + (i + 1) * step, ORIGIN[1] - j * step)
        for i in range(SIDE // 32)
        for j in range(SIDE // 32)
    ]
    codes = rng.choice([1, 2, 3, 4, 5, 6, 8, 9], size=len(cells)).astype(np.int32)
    pyogrio.raw.write(
        str(path),
        geometry=shapely.to_wkb(np.array(cells, dtype=object)),
        field_data=[codes],
        fields=["lulc"],
        geometry_type="Polygon",
        crs="EPSG:32633",
        driver="GPKG",
    )
    return str(path)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        features = make_features_catalog(root / "features")
        labels = make_labels(root / "labels.gpkg")
        print(
            f"features store {DATES} dates x {len(CHANNELS)} channels x {SIDE} x {SIDE} px "
            f"written in {time.perf_counter() - started:.1f} s"
        )
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, features, labels, str(root / "chips"), str(SIZE), str(CHIPS)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        written = sum(p.stat().st_size for p in (root / "chips").rglob("*") if p.is_file()) / 2**20
        print(
            f"{figures['chips']} chips of {SIZE} px ({DATES * len(CHANNELS)} bands each): "
            f"{figures['seconds']:.1f} s, {figures['chips'] / figures['seconds']:.1f} chips/s, "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB, {written:.0f} MiB written"
        )


if __name__ == "__main__":
    main()

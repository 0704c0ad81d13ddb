"""How fast `deep-lulc predict` runs against the bare network, and whether its memory stays flat with AOI size.

Run: .venv/bin/python -m benchmarks.predict [--architecture unet|temporal-pixel|...] [--window 512] [--overlap 64]
     [--batch-size 4] [--rate-size N] [--rss-sizes 2048,8192 | --rss-sizes none]

1. Bare forward rate: the network (default predict's default architecture, temporal-pixel; `--architecture
   unet` for the resnet18 U-Net; 23 dates x 9 features = 207 inputs) on random windows already in memory,
   in the layout predict feeds it, no I/O; px/s of network input. It is measured in the stage's own
   process just before and just after the stage (the machine is shared: a rate taken minutes away would
   measure other people's load), in wall and CPU time.
2. End-to-end rate: the `predict` stage on a synthetic features store of N x N px written to disk (Zarr
   read, normalisation, blending, COG writing included); px/s of map. Overlapping windows make a network
   see (window / (window - overlap))^2 pixels per map pixel, which caps the ratio below 1 (the ceiling is
   printed beside the ratio), except for the part of a network that predict computes once per pixel
   (`PixelwiseNetwork`: the temporal networks' encoder), which the bare forward still runs on every window.
3. Peak RSS of the whole stage in a fresh process for 2k x 2k and 8k x 8k px AOIs. With a GPU the real
   U-Net runs; on CPU the U-Net would take most of an hour at 8k, so the 1x1-convolution stand-in carries
   the same data path (reads, blending accumulator, writers) and the U-Net's own inference memory is
   measured separately at the same batch size.
4. The seed's yardstick: its AOI of 1,296 km2 (12.96 Mpx at 10 m), extrapolated from the end-to-end rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pystac
import torch
import xarray as xr
from affine import Affine
from torch import nn

from benchmarks.measure import peak_rss_mib
from deep_lulc.shared.geo.grids import geobox, write_projection
from deep_lulc.shared.geo.windows import window_grid
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.models.architectures import DEFAULT_ARCHITECTURE, NETWORK_ARCHITECTURES
from deep_lulc.shared.models.inference import InferenceSetup, input_memory_format, pixelwise_network
from deep_lulc.shared.models.networks import ModelConfig, build_network, save_weights
from deep_lulc.shared.products.zarr_store import zarr_asset
from deep_lulc.stages.features.indices import CHANNELS

DATES = 23
SEED_AOI_KM2 = 1296.0
PIXEL_KM2 = 1e-4  # 10 m pixels
ORIGIN = (500000.0, 5100000.0)


def _config(
    encoder: str, architecture: str = "unet", *, dates: list[str] | None = None, features: list[str] | None = None
) -> ModelConfig:
    """`dates`, `features`: those of a features store the model must accept (default: 2023's 16-day grid and
    the features stage's channels, as `write_features` writes them)."""
    dates = dates or [(dt.date(2023, 1, 1) + dt.timedelta(days=16 * k)).isoformat() for k in range(DATES)]
    features = features or list(CHANNELS)
    n_in = len(dates) * len(features)
    return ModelConfig(
        encoder=encoder,
        n_in=n_in,
        n_out=max(SLOVENIA.values) + 1,
        chip_size=64,
        input_mode="stack",
        channels=[f"{f}_{d}" for d in dates for f in features],
        features=features,
        dates=dates,
        mean=[0.2] * n_in,
        std=[0.1] * n_in,
        class_values=SLOVENIA.values,
        class_names=[c.name for c in SLOVENIA.classes],
        nodata=SLOVENIA.nodata,
        architecture=architecture,
    )


def write_model(
    folder: Path,
    encoder: str,
    architecture: str = "unet",
    *,
    dates: list[str] | None = None,
    features: list[str] | None = None,
) -> str:
    """A model item as `train` writes it (untrained weights: speed does not depend on them)."""
    config = _config(encoder, architecture, dates=dates, features=features)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(build_network(config), folder / "model.safetensors")
    (folder / "model-config.json").write_text(config.to_json())
    item = pystac.Item("model-benchmark", geometry=None, bbox=None, datetime=dt.datetime(2023, 1, 1), properties={})
    item.add_asset("weights", pystac.Asset(str(folder / "model.safetensors")))
    item.add_asset("config", pystac.Asset(str(folder / "model-config.json")))
    catalog = pystac.Catalog("model", "benchmark model")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json")


def write_features(folder: Path, size: int, *, dense: bool, seed: int = 0) -> str:
    """A features store of size x size px. Dense: random values on disk; sparse: only valid_count is written
    and every features chunk reads as its fill value (for memory runs where disk would not hold 8k x 8k)."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "features.zarr"
    block = 256
    times = np.array([np.datetime64(dt.date(2023, 1, 1) + dt.timedelta(days=16 * k), "ns") for k in range(DATES)])
    transform = Affine(10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    template = xr.Dataset(
        {
            "features": (
                ("time", "channel", "y", "x"),
                da.empty((DATES, len(CHANNELS), size, size), chunks=(-1, -1, block, block), dtype=np.float32),
            ),
            "valid_count": (("y", "x"), da.zeros((size, size), chunks=(block, block), dtype=np.int16)),
        },
        coords={
            "time": times,
            "channel": list(CHANNELS),
            "y": ORIGIN[1] - 10.0 * (np.arange(size) + 0.5),
            "x": ORIGIN[0] + 10.0 * (np.arange(size) + 0.5),
        },
    )
    encoding = {"features": {"chunks": (DATES, len(CHANNELS), block, block)}, "valid_count": {"chunks": (block, block)}}
    template.to_zarr(store, mode="w", compute=False, encoding=encoding, zarr_format=2, consolidated=True)
    rng = np.random.default_rng(seed)
    for y in range(0, size, block):
        rows = slice(y, min(y + block, size))
        height = rows.stop - rows.start
        band: dict[str, Any] = {"valid_count": (("y", "x"), np.full((height, size), DATES, dtype=np.int16))}
        if dense:
            values = rng.normal(0.2, 0.1, size=(DATES, len(CHANNELS), height, size)).astype(np.float32)
            band["features"] = (("time", "channel", "y", "x"), values)
        xr.Dataset(band).to_zarr(store, region={"y": rows, "x": slice(0, size)}, zarr_format=2)
    footprint = {
        "type": "Polygon",
        "coordinates": [[[14.9, 46.0], [15.0, 46.0], [15.0, 46.1], [14.9, 46.1], [14.9, 46.0]]],
    }
    item = pystac.Item(
        f"features-benchmark-{size}",
        geometry=footprint,
        bbox=[14.9, 46.0, 15.0, 46.1],
        datetime=None,
        properties={"start_datetime": "2023-01-01T00:00:00Z", "end_datetime": "2023-12-31T23:59:59Z"},
    )
    write_projection(item, geobox(32633, transform, size, size))
    item.add_asset("data", zarr_asset(str(store), title="features"))
    catalog = pystac.Catalog("features", "benchmark features")
    catalog.add_item(item)
    catalog.normalize_and_save(str(folder), catalog_type=pystac.CatalogType.SELF_CONTAINED)
    return str(folder / "catalog.json")


@torch.no_grad()
def forward_rate(
    encoder: str,
    *,
    window: int,
    batch_size: int,
    device: torch.device,
    repeats: int = 3,
    architecture: str = "unet",
) -> dict[str, float]:
    """Network input px/s (wall and CPU time) on random windows already in memory, in the layout predict
    gives the network: the same window and batch as predict and the whole network on every window, so for a
    network whose per-pixel part predict shares between overlapping windows this is what predict would pay
    without that sharing. The first forward (allocation, kernel choice) is not timed."""
    config = _config(encoder, architecture)
    network = build_network(config).to(device).to(memory_format=torch.channels_last).eval()
    layout = input_memory_format(network)
    batch = torch.randn(batch_size, config.n_in, window, window, device=device).contiguous(memory_format=layout)

    def once() -> None:
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.float16):
                network(batch)
            torch.cuda.synchronize()
        else:
            network(batch)

    once()
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        once()
    pixels = batch_size * window * window * repeats
    return {"px_per_s": pixels / (time.perf_counter() - started), "cpu_px_per_s": pixels / (time.process_time() - cpu)}


def _child(args: argparse.Namespace) -> None:
    """One predict run in this fresh process; prints seconds, pixels and peak RSS as JSON."""
    from deep_lulc.stages.predict import stage
    from deep_lulc.stages.predict.model_loading import LoadedModel
    from deep_lulc.stages.predict.params import PredictParams

    if args.network == "pointwise":
        real_load = stage.load_model  # type: ignore[attr-defined]

        def pointwise(model: Any) -> LoadedModel:
            loaded = real_load(model)
            stand_in: nn.Module = nn.Conv2d(loaded.config.n_in, loaded.config.n_out, kernel_size=1)
            return LoadedModel(loaded.item, loaded.config, stand_in, loaded.scheme)

        stage.load_model = pointwise  # type: ignore[attr-defined]
    params = PredictParams(tile_size=args.window, overlap=args.overlap, batch_size=args.batch_size)
    bare = bare_rates(args) if args.network == "unet" else []
    started, cpu = time.perf_counter(), time.process_time()
    result = stage.run(inputs={"model": args.model, "features": args.features}, output=args.out, params=params)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    bare += bare_rates(args) if args.network == "unet" else []
    figures = {"seconds": seconds, "cpu_seconds": cpu_seconds, "pixels": result.extra["pixels"]}
    print(json.dumps({**figures, "peak_rss_mb": peak_rss_mib(), "bare": bare}))


def bare_rates(args: argparse.Namespace) -> list[dict[str, float]]:
    """The bare forward in the stage's own process, just before or after it: the machine is shared, so a
    rate taken minutes away from the stage would measure other people's load as much as the network."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return [
        forward_rate(
            args.encoder, window=args.window, batch_size=args.batch_size, device=device, architecture=args.architecture
        )
    ]


def _run_child(args: argparse.Namespace, *, model: str, features: str, out: Path, network: str) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "benchmarks.predict",
        "--child",
        "--model",
        model,
        "--features",
        features,
        "--out",
        str(out),
        "--network",
        network,
        "--window",
        str(args.window),
        "--overlap",
        str(args.overlap),
        "--batch-size",
        str(args.batch_size),
        "--architecture",
        args.architecture,
        "--encoder",
        args.encoder,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"predict run failed:\n{completed.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures


@torch.no_grad()
def unet_inference_rss(encoder: str, *, window: int, batch_size: int, architecture: str = "unet") -> float:
    """Peak RSS (MiB) of this process after one U-Net forward at the predict batch size (CPU)."""
    config = _config(encoder, architecture)
    network = build_network(config).eval().to(memory_format=torch.channels_last)
    layout = input_memory_format(network)
    network(torch.randn(batch_size, config.n_in, window, window).contiguous(memory_format=layout))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pixelwise_shared(architecture: str, device: torch.device) -> bool:
    """Whether predict computes this architecture's per-pixel part once per pixel rather than per window."""
    config = _config("resnet18", architecture)
    setup = InferenceSetup.for_model(config, window=64, overlap=0, batch_size=1, device=device)
    return pixelwise_network(build_network(config), setup) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--network", default="unet", help=argparse.SUPPRESS)
    parser.add_argument("--encoder", default="resnet18", help="ResNet encoder of the unet architecture.")
    parser.add_argument("--architecture", default=DEFAULT_ARCHITECTURE, choices=list(NETWORK_ARCHITECTURES))
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=None, help="Default: 1 on CPU, 8 on CUDA (as predict).")
    parser.add_argument("--rate-size", type=int, default=None, help="End-to-end AOI edge (default 1024 CPU, 4096 GPU).")
    parser.add_argument("--rss-sizes", default="2048,8192", help="AOI edges of the memory runs; 'none' skips them.")
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    args.batch_size = args.batch_size or (8 if cuda else 1)
    rate_size = args.rate_size or (4096 if cuda else 1024)
    name = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    network_name = f"{args.encoder} U-Net" if args.architecture == "unet" else args.architecture
    print(
        f"device: {name}; {network_name}, {DATES * len(CHANNELS)} inputs, window {args.window}, "
        f"overlap {args.overlap}, batch {args.batch_size}"
    )
    with tempfile.TemporaryDirectory(prefix="deep-lulc-bench-") as scratch:
        root = Path(scratch)
        model = write_model(root / "model", args.encoder, args.architecture)
        started = time.perf_counter()
        dense = write_features(root / f"dense-{rate_size}", rate_size, dense=True)
        print(f"(wrote a {rate_size} x {rate_size} px features store in {time.perf_counter() - started:.0f} s)")
        run = _run_child(args, model=model, features=dense, out=root / "out-rate", network="unet")
        bare = float(np.mean([b["px_per_s"] for b in run["bare"]]))
        bare_cpu = float(np.mean([b["cpu_px_per_s"] for b in run["bare"]]))
        rates = ", ".join(f"{b['px_per_s']:,.0f}" for b in run["bare"])
        print(
            f"bare forward:           {bare:12,.0f} px/s of network input (mean of {rates}: just before and after "
            "the stage, in its process)"
        )
        end_to_end = run["pixels"] / run["seconds"]
        windows = window_grid(rate_size, rate_size, args.window, args.overlap)
        ceiling = rate_size**2 / sum(w.height * w.width for w in windows)
        print(
            f"end-to-end predict:     {end_to_end:12,.0f} px/s of map ({rate_size} x {rate_size} px, "
            f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:,.0f} MiB)"
        )
        goal = 0.8 if cuda else (0.45 if rate_size <= 1024 else 0.6)
        shared = pixelwise_shared(args.architecture, device)
        reach = (
            "its per-pixel part runs once per map pixel, not once per window, so the ratio may pass"
            if shared
            else f"{end_to_end / bare / ceiling:.2f} of the reachable under"
        )
        print(
            f"ratio end-to-end/bare:  {end_to_end / bare:12.2f}   (goal >= {goal}; {reach} the overlap ceiling "
            f"{ceiling:.2f} of {len(windows)} windows)"
        )
        cpu_ratio = run["pixels"] / run["cpu_seconds"] / bare_cpu
        print(f"  the same in CPU time:  {cpu_ratio:12.2f}   (less disturbed by other work on a shared machine)")
        km2_per_s = end_to_end * PIXEL_KM2
        print(
            f"throughput:             {km2_per_s:12.3f} km2/s; the seed's {SEED_AOI_KM2:,.0f} km2 AOI in "
            f"{SEED_AOI_KM2 / km2_per_s:,.0f} s (goal on GPU: < 60 s)"
        )
        network = "unet" if cuda else "pointwise"
        sizes = [] if args.rss_sizes.strip().lower() in ("", "none") else [int(s) for s in args.rss_sizes.split(",")]
        for size in sizes:
            sparse = write_features(root / f"sparse-{size}", size, dense=False)
            figures = _run_child(args, model=model, features=sparse, out=root / f"out-{size}", network=network)
            print(
                f"peak RSS {size:>5} x {size:<5}: {figures['peak_rss_mb']:8,.0f} MiB  ({network} network, "
                f"{figures['seconds']:.0f} s)"
            )
        if not cuda and sizes:
            rss = unet_inference_rss(
                args.encoder, window=args.window, batch_size=args.batch_size, architecture=args.architecture
            )
            print(
                f"U-Net forward at batch {args.batch_size}: {rss:8,.0f} MiB peak RSS of a process that only runs "
                "the network (what a CPU U-Net run adds beyond the stand-in's data path)"
            )


if __name__ == "__main__":
    main()

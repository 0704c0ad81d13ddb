"""Does the pipeline's cost grow linearly with the AOI, and does its memory stay flat?

Run: .venv/bin/python -m benchmarks.scale [--sizes 1024,2048,4096] [--frames 6] [--architecture A] [--nodes 4,16]
     [--work DIR]

For each size (px on a side, 10 m pixels) a synthetic catalog is written (`synth`, `--frames`
acquisitions a year), then `cube` -> `features` -> `predict` run over the whole scene, each stage in a
fresh child process, as a pod would run it. Per stage and size: seconds inside the stage's `run` and of
the whole process (interpreter start and imports included), seconds per km2 and the child's peak RSS.
Predict uses an untrained network (speed does not depend on the weights) of `--architecture` (default:
predict's default) at predict's default window; at the largest size the bare forward of the same network
over windows of the same size, in memory, is measured in a child of its own, so the end-to-end / bare
ratio counts everything predict adds: reads, normalisation, blending, writing, and the overlap the windows
share (less for a network whose per-pixel part predict computes once per pixel, not once per window).

At the smallest size the prediction is also made tile by tile (`plan-tiles` with tiles of half the size,
`predict --tile`, `merge`) to measure the merge. From the per-km2 costs it then extrapolates to the
original's 1,296 km2 AOI fanned out over tiles (`plan-tiles --tile-size`, default 2048 px) on clusters of
`--nodes` nodes. Everything is written under one temporary folder (or `--work`), removed size by size.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.measure import peak_rss_mib
from deep_lulc.shared.models.architectures import DEFAULT_ARCHITECTURE, NETWORK_ARCHITECTURES

PIXEL_KM2 = 1e-4  # 10 m pixels
SEED_AOI_KM2 = 1296.0  # the original's AOI, taken as a square of 36 x 36 km
YEAR = 2023
PIPELINE = ("cube", "features", "predict")
# stage name -> (module with `run`, params module, params class)
STAGES: dict[str, tuple[str, str, str]] = {
    "synth": ("deep_lulc.stages.synth.stage", "deep_lulc.stages.synth.params", "SynthParams"),
    "cube": ("deep_lulc.stages.cube.stage", "deep_lulc.stages.cube.params", "CubeParams"),
    "features": ("deep_lulc.stages.features.stage", "deep_lulc.stages.features.params", "FeaturesParams"),
    "predict": ("deep_lulc.stages.predict.stage", "deep_lulc.stages.predict.params", "PredictParams"),
    "plan-tiles": ("deep_lulc.stages.predict.tiles", "deep_lulc.stages.predict.params", "PlanTilesParams"),
    "merge": ("deep_lulc.stages.merge.stage", "deep_lulc.stages.merge.params", "MergeParams"),
}


@dataclass(frozen=True)
class Run:
    """One child process: seconds inside the stage, seconds of the process, its peak RSS and the result."""

    stage: str
    size: int
    seconds: float
    process_seconds: float
    peak_rss_mib: float
    result: dict[str, Any]

    @property
    def km2(self) -> float:
        return self.size * self.size * PIXEL_KM2


# ---------------------------------------------------------------------------------------------- children


def _child_stage(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one stage in this fresh process, the way its CLI would (params validated by its model)."""
    module, params_module, params_class = STAGES[spec["stage"]]
    run = importlib.import_module(module).run
    params = getattr(importlib.import_module(params_module), params_class).model_validate(spec["params"])
    started = time.perf_counter()
    result = run(inputs=spec["inputs"], output=spec["output"], params=params)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mib": peak_rss_mib(), "catalog": result.catalog, "extra": result.extra}


def _child_bare(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The model's network over random windows already in memory, in the layout predict feeds it: no reads,
    normalisation, blending or writing. The first forward (allocation, kernel choice) is not timed."""
    import torch

    from deep_lulc.shared.models.inference import InferenceSetup, input_memory_format, pixelwise_network
    from deep_lulc.stages.predict.model_loading import load_model, read_model_item

    config = read_model_item(spec["model"]).config
    network = load_model(read_model_item(spec["model"])).network
    setup = InferenceSetup.for_model(config, window=64, overlap=0, batch_size=1, device=torch.device("cpu"))
    network = network.to(memory_format=torch.channels_last).eval()
    window, repeats = int(spec["window"]), int(spec["repeats"])
    n_in = config.n_in
    batch = torch.randn(1, n_in, window, window).contiguous(memory_format=input_memory_format(network))
    with torch.no_grad():
        network(batch)
        started = time.perf_counter()
        for _ in range(repeats):
            network(batch)
        seconds = time.perf_counter() - started
    pixelwise = pixelwise_network(network, setup) is not None
    return {"px_per_s": repeats * window * window / seconds, "threads": torch.get_num_threads(), "pixelwise": pixelwise}


def _spawn(kind: str, spec: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """A fresh interpreter for one measurement; its last stdout line is the JSON it measured."""
    command = [sys.executable, "-m", "benchmarks.scale", "--child", kind, "--spec", json.dumps(spec)]
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"{kind} {spec.get('stage', '')} failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}"
        )
    figures: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return figures, wall


def run_stage(stage: str, size: int, *, inputs: Mapping[str, str], output: Path, params: Mapping[str, Any]) -> Run:
    spec = {"stage": stage, "inputs": dict(inputs), "output": str(output), "params": dict(params)}
    figures, wall = _spawn("stage", spec)
    return Run(stage, size, figures["seconds"], wall, figures["peak_rss_mib"], figures)


# ---------------------------------------------------------------------------------------------- inputs


def scene_aoi(synth_catalog: str, folder: Path) -> str:
    """An AOI of the whole synthetic scene in its own UTM CRS, half a pixel inside its edges, so that the
    cube (which snaps the AOI outward onto the sources' lattice) is the scene, pixel for pixel."""
    import pystac

    item = next(iter(pystac.Catalog.from_file(synth_catalog).get_items(recursive=True)))
    asset = next(a for a in item.assets.values() if a.extra_fields.get("proj:transform", [0])[0] == 10.0)
    step, _, x0, _, _, y0 = asset.extra_fields["proj:transform"][:6]
    height, width = asset.extra_fields["proj:shape"]
    inset = step / 2
    x1, y1 = x0 + width * step, y0 - height * step
    ring = [[x0 + inset, y0 - inset], [x1 - inset, y0 - inset], [x1 - inset, y1 + inset], [x0 + inset, y1 + inset]]
    crs = str(item.properties["proj:code"]).replace("EPSG:", "urn:ogc:def:crs:EPSG::")
    polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs}},
        "features": [{"type": "Feature", "properties": {}, "geometry": polygon}],
    }
    path = folder / "aoi-scene.geojson"
    path.write_text(json.dumps(document))
    return str(path)


def features_layout(features_catalog: str) -> tuple[list[str], list[str]]:
    """(dates, channels) of a features item, for a model that accepts exactly these features."""
    from deep_lulc.shared.products.features import open_features

    _, dataset = open_features(features_catalog, lazy=False)
    dates = [str(np.datetime_as_string(t, unit="D")) for t in dataset.time.values]
    return dates, [str(c) for c in dataset.channel.values.tolist()]


# ---------------------------------------------------------------------------------------------- figures


def linear_fit(km2: Sequence[float], seconds: Sequence[float]) -> tuple[float, float]:
    """(fixed s, s per km2) by least squares; through the origin when only one size was measured."""
    if len(km2) < 2:
        return 0.0, seconds[0] / km2[0]
    slope, intercept = np.polyfit(np.asarray(km2), np.asarray(seconds), 1)
    return max(0.0, float(intercept)), float(slope)


@dataclass(frozen=True)
class Pod:
    """One tile of the fan-out: its core, and the area its cube, features and predict cover (the bounding
    box of the windows its core needs), by which its cost is scaled."""

    core_km2: float
    read_km2: float


def tile_pods(edge_px: int, tile_px: int, window: int, overlap: int) -> list[Pod]:
    """The pods of a square AOI `edge_px` on a side cut into cores of `tile_px`, each with the read region
    that `predict --tile` needs: the bounding box of the inference windows touching its core."""
    from deep_lulc.shared.geo.windows import blocks, window_grid, windows_touching

    grid = window_grid(edge_px, edge_px, window, overlap)
    pods = []
    for core in blocks(edge_px, edge_px, tile_px):
        touching = windows_touching(grid, core)
        rows = max(w.rows.stop for w in touching) - min(w.rows.start for w in touching)
        cols = max(w.cols.stop for w in touching) - min(w.cols.start for w in touching)
        pods.append(Pod(core.height * core.width * PIXEL_KM2, rows * cols * PIXEL_KM2))
    return pods


def cluster_wall(pod_seconds: Sequence[float], nodes: int) -> float:
    """Longest-first onto `nodes` nodes, one pod per node at a time: the makespan."""
    loads = [0.0] * nodes
    for seconds in sorted(pod_seconds, reverse=True):
        loads[loads.index(min(loads))] += seconds
    return max(loads)


def _fmt_mib(value: float) -> str:
    return f"{value:,.0f}"


# ---------------------------------------------------------------------------------------------- main


def measure_size(
    size: int, args: argparse.Namespace, root: Path, model: str | None
) -> tuple[dict[str, Run], str | None, dict[str, Any]]:
    """synth (setup) -> cube -> features -> predict at one size. The model is written once, after the first
    features, for exactly their dates and channels; returns the runs, the model and what features kept."""
    folder = root / f"size-{size}"
    folder.mkdir(parents=True)
    runs: dict[str, Run] = {}
    runs["synth"] = run_stage(
        "synth", size, inputs={}, output=folder / "synth", params={"size": size, "dates": args.frames, "year": YEAR}
    )
    synth_catalog = runs["synth"].result["catalog"]
    aoi = scene_aoi(synth_catalog, folder)
    period = {"start": f"{YEAR}-01-01", "end": f"{YEAR}-12-31"}
    runs["cube"] = run_stage(
        "cube", size, inputs={"stac": synth_catalog, "aoi": aoi}, output=folder / "cube", params=period
    )
    shutil.rmtree(folder / "synth", ignore_errors=True)
    runs["features"] = run_stage(
        "features", size, inputs={"cube": runs["cube"].result["catalog"]}, output=folder / "features", params={}
    )
    shutil.rmtree(folder / "cube", ignore_errors=True)
    features = runs["features"].result["catalog"]
    if model is None:
        from benchmarks.predict import write_model

        dates, channels = features_layout(features)
        model = write_model(root / "model", "resnet18", args.architecture, dates=dates, features=channels)
    predict_params: dict[str, Any] = {"tile_size": args.tile_size, "overlap": args.overlap}
    runs["predict"] = run_stage(
        "predict",
        size,
        inputs={"model": model, "features": features},
        output=folder / "predict",
        params=predict_params,
    )
    info = {"features": features, "frames": runs["features"].result["extra"].get("frames_kept")}
    return runs, model, info


def measure_merge(size: int, args: argparse.Namespace, root: Path, model: str, features: str) -> Run | None:
    """The smallest size again, as tiles of half its edge, merged: the merge's own cost (None if the tile
    stages refuse, which the scale figures do not depend on)."""
    folder = root / f"tiles-{size}"
    try:
        plan = run_stage(
            "plan-tiles",
            size,
            inputs={"features": features},
            output=folder / "tiles.json",
            params={"tile_size": size // 2, "window_size": args.tile_size, "overlap": args.overlap},
        )
        catalogs: dict[str, str] = {}
        for index, tile in enumerate(plan.result["extra"]["tiles"]):
            tile_run = run_stage(
                "predict",
                size,
                inputs={"model": model, "features": features},
                output=folder / str(tile["id"]),
                params={"tile": str(tile["id"]), "tiles": plan.result["catalog"]},
            )
            catalogs[f"tile_{index:04d}"] = tile_run.result["catalog"]
        return run_stage("merge", size, inputs=catalogs, output=folder / "merged", params={})
    except (RuntimeError, KeyError) as exc:
        print(f"(merge not measured: {str(exc).splitlines()[0]})")
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(runs: dict[int, dict[str, Run]], bare: dict[str, Any], merge: Run | None, args: argparse.Namespace) -> None:
    sizes = sorted(runs)
    print()
    print(f"{'size px':>8} {'km2':>7} {'stage':<15} {'run s':>8} {'process s':>9} {'s/km2':>8} {'peak RSS MiB':>12}")
    for size in sizes:
        for stage, measured in runs[size].items():
            label = "synth (setup)" if stage == "synth" else stage
            print(
                f"{size:>8} {measured.km2:>7.1f} {label:<15} {measured.seconds:>8.1f} "
                f"{measured.process_seconds:>9.1f} {measured.seconds / measured.km2:>8.2f} "
                f"{_fmt_mib(measured.peak_rss_mib):>12}"
            )
        total = sum(runs[size][s].process_seconds for s in PIPELINE)
        print(
            f"{size:>8} {runs[size]['cube'].km2:>7.1f} {'cube..predict':<15} {'':>8} {total:>9.1f} "
            f"{total / runs[size]['cube'].km2:>8.2f}"
        )
    if merge is not None:
        print(
            f"{merge.size:>8} {merge.km2:>7.1f} {'merge (tiles)':<15} {merge.seconds:>8.1f} "
            f"{merge.process_seconds:>9.1f} {merge.seconds / merge.km2:>8.2f} "
            f"{_fmt_mib(merge.peak_rss_mib):>12}"
        )

    small, large = sizes[0], sizes[-1]
    if large != small:
        area = (large / small) ** 2
        print(
            f"\nLinearity, {large} px vs {small} px ({area:.0f}x the area): s/km2 ratio (1 = linear; stage "
            f"time, then process time) and peak RSS ratio (1 = flat)"
        )
        for stage in PIPELINE:
            a, b = runs[small][stage], runs[large][stage]
            per_km2 = (b.seconds / b.km2) / (a.seconds / a.km2)
            per_km2_process = (b.process_seconds / b.km2) / (a.process_seconds / a.km2)
            rss = b.peak_rss_mib / a.peak_rss_mib
            verdict = "linear" if per_km2 <= 1.15 else "super-linear"
            flat = "flat" if rss <= 1.25 else f"grows ({rss:.1f}x for {area:.0f}x the area)"
            print(
                f"  {stage:<9} s/km2 x{per_km2:5.2f} (process x{per_km2_process:5.2f}) {verdict:<13} "
                f"peak RSS x{rss:5.2f} {flat}"
            )

    from deep_lulc.shared.geo.windows import window_grid

    predicted = runs[large]["predict"]
    windows = window_grid(large, large, args.tile_size, args.overlap)
    window_px = sum(w.height * w.width for w in windows)
    map_px = large * large
    bare_map_s = map_px / bare["px_per_s"]
    ratio = bare_map_s / predicted.seconds
    ceiling = map_px / window_px
    print(
        f"\nPredict at {large} x {large} px, window {args.tile_size} / overlap {args.overlap} "
        f"({len(windows)} windows, {bare['threads']} torch threads):"
    )
    print(
        f"  bare forward {bare['px_per_s']:,.0f} px/s of network input: the map's {map_px / 1e6:.1f} Mpx in "
        f"{bare_map_s:.1f} s; the windows' {window_px / 1e6:.1f} Mpx in {window_px / bare['px_per_s']:.1f} s"
    )
    print(f"  end-to-end {predicted.seconds:.1f} s in the stage ({predicted.process_seconds:.1f} s with the process)")
    reach = (
        "its per-pixel part runs once per map pixel, not once per window, so the ratio may pass"
        if bare.get("pixelwise")
        else f"{ratio / ceiling:.2f} of the reachable under"
    )
    print(f"  ratio end-to-end/bare: {ratio:.2f} (goal >= 0.6 on CPU); {reach} the overlap ceiling {ceiling:.2f}")

    # ---- extrapolation
    fits = {
        stage: linear_fit([runs[s][stage].km2 for s in sizes], [runs[s][stage].process_seconds for s in sizes])
        for stage in PIPELINE
    }
    edge = round(math.sqrt(SEED_AOI_KM2 / PIXEL_KM2))
    pods = tile_pods(edge, args.plan_tile, args.tile_size, args.overlap)

    def pod_seconds(pod: Pod) -> float:
        return sum(fixed + per_km2 * pod.read_km2 for fixed, per_km2 in fits.values())

    seconds = [pod_seconds(p) for p in pods]
    # the merge's start-up once, its work in proportion to the area (an upper bound: fixed costs scale too)
    merge_s = (
        merge.process_seconds - merge.seconds + merge.seconds / merge.km2 * SEED_AOI_KM2 if merge is not None else 0.0
    )
    tile_km2 = args.plan_tile**2 * PIXEL_KM2
    print(
        f"\nEXTRAPOLATION (not measured) for the original's {SEED_AOI_KM2:,.0f} km2 AOI, taken as {edge} x {edge} "
        f"px: tiles of {args.plan_tile} px ({tile_km2:.1f} km2 each) -> {len(pods)} pods"
    )
    print("  per-stage cost fitted as fixed + per-km2 x area over the measured sizes (process seconds):")
    for stage, (fixed, per_km2) in fits.items():
        print(f"    {stage:<9} {fixed:6.1f} s + {per_km2:6.3f} s/km2")
    print(
        f"  a pod runs cube -> features -> predict over its core plus read margin "
        f"({min(p.read_km2 for p in pods):.0f}-{max(p.read_km2 for p in pods):.0f} km2): "
        f"{min(seconds):,.0f}-{max(seconds):,.0f} s each, {sum(seconds):,.0f} s in all"
    )
    merge_text = f"merge {merge_s:,.0f} s, from {merge.km2:.0f} km2" if merge is not None else "merge not measured"
    print(f"  one machine, tiles in sequence: {sum(seconds) + merge_s:,.0f} s ({merge_text})")
    for nodes in args.nodes:
        wall = cluster_wall(seconds, nodes) + merge_s
        busy = min(nodes, len(pods))
        print(
            f"  {nodes:>3} nodes (one pod per node at a time, each as fast as this machine): {wall:,.0f} s wall "
            f"= {wall / 60:.1f} min ({busy} nodes busy)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", choices=["stage", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1024,2048,4096", help="Scene edges in px (multiples of 16, <= 4096).")
    parser.add_argument("--frames", type=int, default=6, help="Acquisitions per year in each synthetic catalog.")
    parser.add_argument("--nodes", default="4,16", help="Cluster sizes of the extrapolation.")
    parser.add_argument("--plan-tile", type=int, default=2048, help="plan-tiles --tile-size of the extrapolation.")
    parser.add_argument(
        "--architecture", default=DEFAULT_ARCHITECTURE, choices=NETWORK_ARCHITECTURES, help="The model predict runs."
    )
    parser.add_argument("--tile-size", type=int, default=512, help="predict's inference window (its default: 512).")
    parser.add_argument("--overlap", type=int, default=64, help="predict's overlap (its default: 64).")
    parser.add_argument("--bare-repeats", type=int, default=6, help="Timed forwards of the bare-forward child.")
    parser.add_argument("--no-merge", action="store_true", help="Skip the tiled run that measures the merge.")
    parser.add_argument("--work", help="Folder for the outputs (default: a temporary folder, removed).")
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.spec)
        print(json.dumps(_child_stage(spec) if args.child == "stage" else _child_bare(spec), default=str))
        return
    sizes = sorted(int(s) for s in args.sizes.split(","))
    args.nodes = [int(n) for n in args.nodes.split(",")]
    print(
        f"Scale benchmark: scenes of {', '.join(map(str, sizes))} px on a side at 10 m, {args.frames} acquisitions "
        f"a year (synthetic), {os.cpu_count()} CPUs; each stage in a fresh process"
    )
    scratch = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="deep-lulc-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="run-", dir=scratch))
    runs: dict[int, dict[str, Run]] = {}
    model: str | None = None
    merge: Run | None = None
    bare: dict[str, Any] = {}
    try:
        for size in sizes:
            started = time.perf_counter()
            runs[size], model, info = measure_size(size, args, root, model)
            print(
                f"{size} px done in {time.perf_counter() - started:.0f} s ({info['frames']} frames kept by features)",
                flush=True,
            )
            assert model is not None
            if size == sizes[0] and not args.no_merge:
                merge = measure_merge(size, args, root, model, info["features"])
            if size == sizes[-1]:
                bare, _ = _spawn(
                    "bare", {"model": model, "window": min(args.tile_size, size), "repeats": args.bare_repeats}
                )
            shutil.rmtree(root / f"size-{size}", ignore_errors=True)
        report(runs, bare, merge, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if not args.work:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

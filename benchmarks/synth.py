"""How fast `deep-lulc synth` writes its catalog: seconds, size on disk and Mpx x dates per second.

Run: .venv/bin/python -m benchmarks.synth
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import SynthParams


def main() -> None:
    print(f"{'size':>6} {'dates/yr':>8} {'seconds':>8} {'MiB':>7} {'files':>6} {'Mpx*dates/s':>12}")
    for size, dates in ((256, 24), (512, 24), (1024, 12)):
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            synth.run(inputs={}, output=folder, params=SynthParams(size=size, dates=dates))
            seconds = time.perf_counter() - started
            files = [p for p in Path(folder).rglob("*") if p.is_file()]
            mib = sum(p.stat().st_size for p in files) / 2**20
            rate = size * size * dates * 2 / 1e6 / seconds
            print(f"{size:>6} {dates:>8} {seconds:>8.2f} {mib:>7.1f} {len(files):>6} {rate:>12.2f}")


if __name__ == "__main__":
    main()

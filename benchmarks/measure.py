"""Measurements every benchmark takes the same way (imported by the benchmarks, which never import each other
for them)."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's own peak RSS, or a subprocess's (a dask worker, say) if one it waited for peaked higher.

    Not `ru_maxrss` of RUSAGE_SELF: Linux carries the pre-exec image's peak across execve, so a child would
    report at least its parent's RSS at spawn time. VmHWM belongs to the address space exec creates."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; the fallback where /proc is missing
    status = Path("/proc/self/status")
    if status.exists():
        lines = [line for line in status.read_text().splitlines() if line.startswith("VmHWM:")]
        own = int(lines[0].split()[1]) if lines else own
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

"""The scale benchmark's arithmetic: the tile fan-out it extrapolates to, the cluster schedule and the fit,
and a peak RSS that belongs to the child measured, not to the parent that started it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.scale import PIXEL_KM2, cluster_wall, linear_fit, tile_pods


def test_pods_cover_the_aoi_and_read_at_least_their_core() -> None:
    pods = tile_pods(3600, 2048, window=512, overlap=64)
    assert len(pods) == 4
    assert sum(p.core_km2 for p in pods) == pytest.approx(3600 * 3600 * PIXEL_KM2)
    assert all(p.core_km2 < p.read_km2 <= 3600 * 3600 * PIXEL_KM2 for p in pods)


def test_one_tile_reads_exactly_its_core() -> None:
    (pod,) = tile_pods(1000, 2048, window=512, overlap=64)
    assert pod.read_km2 == pod.core_km2 == pytest.approx(100.0)


def test_cluster_wall_is_the_longest_node() -> None:
    assert cluster_wall([5.0, 3.0, 3.0, 1.0], nodes=2) == 6.0
    assert cluster_wall([5.0, 3.0, 3.0, 1.0], nodes=16) == 5.0
    assert cluster_wall([5.0, 3.0, 3.0, 1.0], nodes=1) == 12.0


def test_linear_fit_recovers_fixed_and_per_km2_costs() -> None:
    km2 = [10.0, 40.0, 160.0]
    fixed, per_km2 = linear_fit(km2, [4.0 + 0.5 * a for a in km2])
    assert fixed == pytest.approx(4.0)
    assert per_km2 == pytest.approx(0.5)
    assert linear_fit([20.0], [10.0]) == (0.0, 0.5)


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB resident in this (parent) process
    ballast[::512] = 2.0
    code = "from benchmarks.measure import peak_rss_mib; print(peak_rss_mib())"
    root = Path(__file__).resolve().parents[3]
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert float(completed.stdout.strip()) < 300, "the child's peak must not include the parent's 400 MiB"
    assert ballast.sum() > 0

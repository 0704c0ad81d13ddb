"""`deep-lulc cube`'s progress bar: on a terminal it counts the frames written to the store; off one (a pipe, a
pod's log) it draws nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from affine import Affine

from deep_lulc.shared.geo import grids
from deep_lulc.shared.sources.sentinel2 import REFLECTANCE_BANDS
from deep_lulc.shared.stage import progress
from deep_lulc.stages.cube.writing import write_store

FRAMES, SIZE, CHUNK = 5, 16, 8  # 2 x 2 chunks a frame and variable
GRID = grids.geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), SIZE, SIZE)


def lazy_cube() -> xr.Dataset:
    """Reflectance and SCL as the loaders hand them over: lazy, read when the store is written."""
    bands = len(REFLECTANCE_BANDS)
    x = 520_000.0 + 10.0 * (np.arange(SIZE) + 0.5)
    y = 5_117_000.0 - 10.0 * (np.arange(SIZE) + 0.5)
    dataset = xr.Dataset(
        {
            "reflectance": (("time", "band", "y", "x"), np.full((FRAMES, bands, SIZE, SIZE), 0.1, dtype=np.float32)),
            "scl": (("time", "y", "x"), np.full((FRAMES, SIZE, SIZE), 4, dtype=np.uint8)),
        },
        coords={
            "time": np.arange(FRAMES).astype("datetime64[D]").astype("datetime64[ns]"),
            "band": list(REFLECTANCE_BANDS),
            "y": y,
            "x": x,
        },
    )
    return dataset.chunk({"time": 1, "band": -1, "y": CHUNK, "x": CHUNK})


def test_on_a_terminal_the_bar_counts_every_frame_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bars: list[Any] = []

    def recorded(**kwargs: Any) -> Any:
        bars.append(make_bar(**kwargs))
        return bars[-1]

    make_bar = progress.progress_bar
    monkeypatch.setattr(progress, "interactive", lambda: True)
    monkeypatch.setattr(progress, "progress_bar", recorded)
    write_store(lazy_cube(), tmp_path / "cube.zarr", grid=GRID, chunk_size=CHUNK, items=[])
    assert len(bars) == 1
    assert (bars[0].n, bars[0].total) == (FRAMES, FRAMES)  # frames, not tasks or chunks
    drawn = capsys.readouterr().err
    assert f"cube:   0%|          | 0/{FRAMES}" in drawn, drawn
    assert "frame/s" in drawn, drawn


def test_off_a_terminal_nothing_is_drawn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_store(lazy_cube(), tmp_path / "cube.zarr", grid=GRID, chunk_size=CHUNK, items=[])
    assert capsys.readouterr().err == ""

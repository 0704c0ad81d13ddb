"""The regular date grid the features are interpolated onto, and the days the interpolation runs over."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np


def target_dates(start: dt.date, end: dt.date, step_days: int) -> list[dt.date]:
    count = (end - start).days // step_days + 1
    return [start + dt.timedelta(days=step_days * k) for k in range(count)]


def _days_since(moments: np.ndarray, origin: dt.date) -> np.ndarray:
    epoch = np.datetime64(origin.isoformat(), "ns")
    return np.asarray((moments.astype("datetime64[ns]") - epoch) / np.timedelta64(1, "D"), dtype=np.float64)


@dataclass(frozen=True)
class DateGrid:
    """Output dates from the cube's period, not its acquisitions, so cubes of one period share them; the
    frames used and the dates as days since the period's start, the interpolation's axis."""

    dates: list[dt.date]
    times: np.ndarray  # the dates as the store's datetime64[ns] coordinate
    source_days: np.ndarray  # days of the frames used
    target_days: np.ndarray

    @property
    def middle(self) -> int:
        """The date the preview shows, and its title names."""
        return len(self.dates) // 2


def date_grid(start: dt.date, end: dt.date, step_days: int, frame_times: np.ndarray) -> DateGrid:
    dates = target_dates(start, end, step_days)
    return DateGrid(
        dates,
        np.array([np.datetime64(d.isoformat(), "ns") for d in dates]),
        _days_since(frame_times, start),
        np.array([(d - start).days for d in dates], dtype=np.float64),
    )

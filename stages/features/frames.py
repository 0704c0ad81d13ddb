"""Which of the cube's frames the features use, and frames.json, the record of every frame's valid fraction.

With `--frame-filter aoi` the choice comes first, from a counting pass over the whole AOI; per pixel, every
frame is read and the windows' counts say afterwards which frames were valid somewhere.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac

from deep_lulc.shared.errors import NothingToDoError
from deep_lulc.shared.geo.windows import PixelWindow
from deep_lulc.shared.io.stac import iso
from deep_lulc.shared.products.zarr_store import ZarrLocation
from deep_lulc.stages.features.params import FeaturesParams
from deep_lulc.stages.features.streaming import CountJob, count_valid, run_all

# The stage's logger: what it reports of the frames is the stage's news, and log lines keep their source.
log = logging.getLogger("deep_lulc.stages.features.stage")


@dataclass(frozen=True)
class Frames:
    """Per frame of the cube: kept (used, or with the per-pixel rule valid somewhere in the AOI), and its
    valid fraction over the AOI."""

    kept: np.ndarray
    fractions: np.ndarray

    @property
    def used(self) -> tuple[int, ...]:
        """The kept frames' indices: the frames the windows read when the choice is made beforehand."""
        return tuple(int(i) for i in np.flatnonzero(self.kept))

    @property
    def count_kept(self) -> int:
        return int(self.kept.sum())

    @property
    def count_dropped(self) -> int:
        return int((~self.kept).sum())


def frame_fractions(counts: list[np.ndarray], frames: int, inside: np.ndarray) -> np.ndarray:
    """Per frame, the fraction of the AOI's pixels with a usable observation."""
    total = np.sum(counts, axis=0) if counts else np.zeros(frames, dtype=np.int64)
    return np.asarray(total, dtype=np.float64) / max(int(inside.sum()), 1)


def aoi_frames(
    params: FeaturesParams, cube: ZarrLocation, windows: list[PixelWindow], times: np.ndarray, inside: np.ndarray
) -> Frames:
    """`--frame-filter aoi`: the frames whose valid fraction over the whole AOI reaches --min-valid."""
    jobs = [CountJob(cube, w, inside[w.slices], params.valid_scl) for w in windows]
    fractions = frame_fractions(run_all(count_valid, jobs, address=params.dask_address), len(times), inside)
    kept = fractions >= params.min_valid
    if not kept.any():
        best = int(np.argmax(fractions))
        suggestion = max(0.0, float(np.floor(fractions[best] * 100) / 100))
        raise NothingToDoError(
            f"every one of {len(times)} frames is below --min-valid {params.min_valid} "
            f"(best {fractions[best]:.4f} on {iso(times[best])[:10]})",
            fix=f"lower --min-valid (e.g. {suggestion:.2f}) or extend the time range",
        )
    log.info("%d of %d frames kept (valid fraction >= %g)", int(kept.sum()), len(times), params.min_valid)
    return Frames(np.asarray(kept), fractions)


def pixel_frames(counts: list[np.ndarray], times: np.ndarray, inside: np.ndarray, params: FeaturesParams) -> Frames:
    """Per-pixel validity, from the windows' counts: a frame is used wherever it is valid, and "kept" says it
    is valid somewhere."""
    fractions = frame_fractions(counts, len(times), inside)
    kept = fractions > 0
    if not kept.any():
        raise NothingToDoError(
            f"no pixel of the AOI has a usable observation in any of {len(times)} frames "
            f"(SCL classes {list(params.valid_scl)}, every band present)",
            fix="extend the time range or widen --valid-scl",
        )
    log.info("%d of %d frames valid somewhere in the AOI (per-pixel validity)", int(kept.sum()), len(times))
    return Frames(kept, fractions)


def write_frames(path: Path, params: FeaturesParams, times: np.ndarray, frames: Frames) -> None:
    record = [
        {"datetime": iso(t), "valid_fraction": round(float(f), 6), "kept": bool(k)}
        for t, f, k in zip(times, frames.fractions, frames.kept, strict=True)
    ]
    document = {
        "frame_filter": params.frame_filter,
        "min_valid": params.min_valid,
        "valid_scl": list(params.valid_scl),
        "frames": record,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def frames_asset(path: Path) -> pystac.Asset:
    return pystac.Asset(
        str(path),
        title="Valid fraction per frame and which were dropped",
        media_type=pystac.MediaType.JSON,
        roles=["metadata"],
    )

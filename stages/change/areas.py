"""Pixel counts of the transition codes turned into areas: the matrix, net change, the largest transitions.

Changed area is taken from counts, not from hectares, so a map without change says 0.0 ha, never -0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.lulc.transitions import TRANSITION_FORMULA, TransitionCoding

TOP_TRANSITIONS = 5


@dataclass(frozen=True)
class Areas:
    """What the two maps' comparison amounts to: `summary` is the matrix_json document."""

    summary: dict[str, Any]
    top_transitions: list[dict[str, Any]]
    raw_changed_ha: float  # what a pixel-by-pixel comparison would have called changed


def measure(counts: np.ndarray, raw_counts: np.ndarray, coding: TransitionCoding, area_m2: float) -> Areas:
    """The areas of the codes written (`counts`) and of a pixel-by-pixel comparison (`raw_counts`); maps that
    share no pixel with a class in both are bad input, since every area would be zero."""
    pixels = counts[1:].reshape(coding.n, coding.n)
    raw_pixels = raw_counts[1:].reshape(coding.n, coding.n)
    raw_changed_ha = round(float(raw_pixels.sum() - np.trace(raw_pixels)) * area_m2 / 10_000, 6)
    if not pixels.any():
        raise BadInputError(
            "no pixel has a class in both maps (they do not overlap, or one is all nodata)",
            fix="pass two maps of the same area",
        )
    return Areas(
        summary=area_summary(pixels, coding, area_m2),
        top_transitions=top_transitions(pixels, coding, area_m2),
        raw_changed_ha=raw_changed_ha,
    )


def area_summary(pixels: np.ndarray, coding: TransitionCoding, area_m2: float) -> dict[str, Any]:
    """The matrix_json document: the matrix in hectares and pixels, net change per class, changed share."""
    hectares = pixels.astype(np.float64) * area_m2 / 10_000
    names = [c.name for c in coding.classes]
    stable = float(np.trace(hectares))
    changed = float(pixels.sum() - np.trace(pixels)) * area_m2 / 10_000  # from counts: no -0.0 when none changed
    net = hectares.sum(axis=0) - hectares.sum(axis=1)
    return {
        "classes": names,
        "hectares": np.round(hectares, 6).tolist(),
        "pixels": pixels.astype(np.int64).tolist(),
        "pixel_area_m2": area_m2,
        "net_change_ha": {name: round(float(v), 6) for name, v in zip(names, net, strict=True)},
        "changed_ha": round(changed, 6),
        "stable_ha": round(stable, 6),
        "changed_fraction": round(changed / (changed + stable), 6),
        "transition_code": TRANSITION_FORMULA,
    }


def top_transitions(pixels: np.ndarray, coding: TransitionCoding, area_m2: float) -> list[dict[str, Any]]:
    """The largest changes by area, biggest first."""
    off_diagonal = pixels.astype(np.int64).copy()
    np.fill_diagonal(off_diagonal, 0)
    order = np.argsort(-off_diagonal, axis=None, kind="stable")[:TOP_TRANSITIONS]
    rows = []
    for flat in order:
        i, j = divmod(int(flat), coding.n)
        if off_diagonal[i, j] == 0:
            break
        rows.append(
            {
                "from": coding.classes[i].name,
                "to": coding.classes[j].name,
                "ha": round(float(off_diagonal[i, j]) * area_m2 / 10_000, 6),
            }
        )
    return rows

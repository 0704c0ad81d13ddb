"""The analyst's part of the demo: the sample of the change map labelled from the synthetic truth.

Real users label the points in QGIS from imagery; here the generator's label polygons of both periods stand
in for the analyst, so the demo can print error-adjusted areas beside the pixel counts and the true areas.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deep_lulc.shared.geo.grids import epsg_of
from deep_lulc.shared.io.publish import write_file_atomically
from deep_lulc.shared.io.storage import join_href
from deep_lulc.shared.lulc.classes import SLOVENIA
from deep_lulc.shared.lulc.labels import rasterize_labels, read_labels
from deep_lulc.shared.lulc.transitions import TransitionCoding, class_indices
from deep_lulc.shared.products.sample import REFERENCE_FROM, REFERENCE_TO, read_sample, with_references
from deep_lulc.shared.products.strata import StrataMap, open_strata_map


@dataclass(frozen=True)
class Truth:
    """Each period's true class on the change map's grid."""

    strata: StrataMap
    before: np.ndarray
    after: np.ndarray

    def transition_ha(self) -> dict[str, float]:
        """True hectares of every transition, by name."""
        coding = TransitionCoding(SLOVENIA)
        i = class_indices(self.before, SLOVENIA, what="the truth")
        j = class_indices(self.after, SLOVENIA, what="the truth")
        valid = (i >= 0) & (j >= 0)
        counts = np.bincount((i * coding.n + j)[valid], minlength=coding.n * coding.n)
        hectares = self.strata.pixel_area_m2 / 10_000
        return {coding.name(code + 1): float(count) * hectares for code, count in enumerate(counts) if count}


def truth_of(change_catalog: str, labels_before: str, labels_after: str) -> Truth:
    strata = open_strata_map(change_catalog, classes=None)
    epsg = epsg_of(strata.grid)
    shape = (strata.grid.height, strata.grid.width)

    def raster(href: str) -> np.ndarray:
        labels = read_labels(href, class_column="lulc", scheme=SLOVENIA, class_map={}, target_epsg=epsg)
        return rasterize_labels(labels, shape=shape, transform=strata.grid.affine, epsg=epsg)

    return Truth(strata, raster(labels_before), raster(labels_after))


def label_from_truth(sample_gpkg: str, truth: Truth, output: str) -> str:
    """The sample with `reference_from`/`reference_to` filled in from the truth, written to `output`/
    labelled.gpkg; points where the truth has no class stay unlabelled."""
    epsg = epsg_of(truth.strata.grid)
    sample = read_sample(sample_gpkg, epsg=epsg)
    rows, cols = truth.strata.pixels_at(sample.xs, sample.ys)
    before = truth.before[rows, cols].astype(np.int64)
    after = truth.after[rows, cols].astype(np.int64)
    missing = (before == SLOVENIA.nodata) | (after == SLOVENIA.nodata)
    references = {REFERENCE_FROM: np.where(missing, -1, before), REFERENCE_TO: np.where(missing, -1, after)}
    with tempfile.TemporaryDirectory() as scratch:
        path = with_references(sample_gpkg, Path(scratch) / "labelled.gpkg", references)
        return write_file_atomically(join_href(output, "labelled.gpkg"), path.read_bytes())


TRUE_AREAS_FILE = "true-areas.json"


def write_true_areas(truth: Truth, output: str) -> str:
    """The true hectares of every transition, beside the labelled sample, for benchmarks to set against the
    estimates."""
    document = {"transitions_ha": truth.transition_ha(), "source": "the synthetic labels of both periods"}
    return write_file_atomically(join_href(output, TRUE_AREAS_FILE), (json.dumps(document, indent=2) + "\n").encode())

"""A landscape of labelled parcels with the structure of a Slovenian valley.

Forest on the high ground, shrubs at its edge, meadows and fields in the valley, a meandering river, two
lakes fringed by wetland, and a town in each half (so both AOIs hold every class). Parcels are Voronoi
cells in map coordinates, so their edges do not follow the pixel grid, as real parcels do not.
Proportions follow the seed's imbalance: forest dominant; water, wetland and gravel pits a few percent,
each split into several parcels in both AOIs so a model sees more than one example of a rare class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
import shapely
from affine import Affine
from rasterio import features
from scipy import ndimage
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry

from deep_lulc.shared.geo.grids import GeoBox, geobox

# The scene is a window of Sentinel-2 tile 33TWM (UTM zone 33N, east of Ljubljana: the seed's area), from
# the upper-left corner of its 10 m lattice.
CRS_EPSG = 32633
PIXEL_SIZE_M = 10.0
ORIGIN_X = 520_000.0
ORIGIN_Y = 5_117_000.0
MGRS_TILE = "33TWM"


def scene_grid(size: int) -> GeoBox:
    """The north-up scene grid, `size` pixels of 10 m a side."""
    return geobox(CRS_EPSG, Affine(PIXEL_SIZE_M, 0.0, ORIGIN_X, 0.0, -PIXEL_SIZE_M, ORIGIN_Y), size, size)


def grid_bounds(grid: GeoBox) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of the grid's outer edges."""
    edges = grid.boundingbox
    return edges.left, edges.bottom, edges.right, edges.top


class Cover(StrEnum):
    """What grows on a parcel; several covers share one LULC class and differ in phenology."""

    WINTER_CROP = "winter_crop"
    SUMMER_CROP = "summer_crop"
    GRASS = "grass"
    DECIDUOUS = "deciduous_forest"
    EVERGREEN = "evergreen_forest"
    SHRUB = "shrub"
    WATER = "water"
    WETLAND = "wetland"
    URBAN = "urban"
    BARE = "bare"


# Cover -> class value of the default (Slovenia) scheme.
COVER_CLASS: dict[Cover, int] = {
    Cover.WINTER_CROP: 1,
    Cover.SUMMER_CROP: 1,
    Cover.DECIDUOUS: 2,
    Cover.EVERGREEN: 2,
    Cover.GRASS: 3,
    Cover.SHRUB: 4,
    Cover.WATER: 5,
    Cover.WETLAND: 6,
    Cover.URBAN: 8,
    Cover.BARE: 9,
}

# Share of the land (outside river, lakes and wetland rings) given to each ranked cover group.
FOREST_SHARE = 0.42
SHRUB_SHARE = 0.07
GRASS_SHARE = 0.22
BARE_SHARE = 0.022
PIT_RADIUS_M = (65.0, 110.0)
SPLIT_X = 0.59  # between the two AOIs (truth.TRAIN_WINDOW and PREDICT_WINDOW), as a fraction of the extent
PARCEL_SPACING_M = 300.0
RIVER_HALF_WIDTH_M = 18.0
WETLAND_RING_M = 110.0
WETLAND_STANDS = 4


@dataclass(frozen=True)
class Parcel:
    parcel_id: int
    geometry: Polygon
    cover: Cover

    @property
    def lulc(self) -> int:
        return COVER_CLASS[self.cover]


@dataclass(frozen=True)
class Landscape:
    grid: GeoBox
    parcels: tuple[Parcel, ...]

    def parcel_index(self, grid: GeoBox | None = None) -> np.ndarray:
        """Index into `parcels` of the parcel under each pixel centre of `grid` (default: the scene grid)."""
        grid = grid or self.grid
        shapes = ((p.geometry, i + 1) for i, p in enumerate(self.parcels))
        burned = features.rasterize(shapes, out_shape=(grid.height, grid.width), transform=grid.affine, dtype="int32")
        holes = burned == 0
        if holes.any():  # float slivers between cells: take the nearest parcel
            _, (rows, cols) = ndimage.distance_transform_edt(holes, return_indices=True)
            burned = burned[rows, cols]
        return np.asarray(burned, dtype=np.int32) - 1

    def class_raster(self, grid: GeoBox | None = None) -> np.ndarray:
        lookup = np.array([p.lulc for p in self.parcels], dtype=np.uint8)
        return np.asarray(lookup[self.parcel_index(grid)])

    def class_fractions(self) -> dict[int, float]:
        areas: dict[int, float] = {}
        for parcel in self.parcels:
            areas[parcel.lulc] = areas.get(parcel.lulc, 0.0) + parcel.geometry.area
        total = sum(areas.values())
        return {value: areas[value] / total for value in sorted(areas)}


def _terrain(rng: np.random.Generator, extent_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random smooth waves (wavelengths 0.3-1.1 of the extent) whose sum stands in for elevation."""
    count = 6
    wavelengths = rng.uniform(0.3, 1.1, count) * extent_m
    angles = rng.uniform(0, math.pi, count)
    phases = rng.uniform(0, 2 * math.pi, count)
    k = 2 * math.pi / wavelengths
    return np.stack([k * np.cos(angles), k * np.sin(angles)], axis=1), phases, rng.uniform(0.5, 1.0, count)


def _terrain_at(waves: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    vectors, phases, weights = waves
    value = np.zeros_like(x, dtype=float)
    for (kx, ky), phase, weight in zip(vectors, phases, weights, strict=True):
        value += weight * np.cos(kx * x + ky * y + phase)
    return value


def _blob(rng: np.random.Generator, centre: tuple[float, float], radius: float) -> Polygon:
    """An irregular round shape: a circle with a smoothly perturbed radius."""
    angles = np.linspace(0, 2 * math.pi, 64, endpoint=False)
    wobble = np.ones_like(angles)
    for harmonic in (2, 3, 5):
        wobble += rng.uniform(0.03, 0.12) * np.cos(harmonic * angles + rng.uniform(0, 2 * math.pi))
    xs = centre[0] + radius * wobble * np.cos(angles)
    ys = centre[1] + radius * wobble * np.sin(angles)
    return Polygon(np.column_stack([xs, ys]))


def _river(rng: np.random.Generator, bounds: tuple[float, float, float, float]) -> Polygon:
    minx, miny, maxx, maxy = bounds
    height = maxy - miny
    xs = np.linspace(minx - 50, maxx + 50, 200)
    t = (xs - minx) / (maxx - minx)
    ys = miny + height * (
        0.5
        + 0.12 * np.sin(2 * math.pi * (1.3 * t) + rng.uniform(0, 2 * math.pi))
        + 0.04 * np.sin(2 * math.pi * (4.1 * t) + rng.uniform(0, 2 * math.pi))
    )
    buffered: Polygon = LineString(np.column_stack([xs, ys])).buffer(RIVER_HALF_WIDTH_M)
    return buffered


def _explode(geometry: BaseGeometry) -> list[Polygon]:
    return [g for g in shapely.get_parts(geometry) if isinstance(g, Polygon) and g.area > 1.0]


def generate_landscape(grid: GeoBox, *, seed: int) -> Landscape:
    """The first period's landscape for `seed`; deterministic."""
    rng = np.random.default_rng([seed, 7])
    bounds = grid_bounds(grid)
    frame = box(*bounds)
    minx, miny, maxx, _ = bounds
    extent = maxx - minx
    waves = _terrain(rng, extent)

    # Water bodies and their wetland fringes, one lake in each horizontal half.
    river = _river(rng, bounds)
    lakes = []
    for left, right in ((0.12, 0.42), (0.66, 0.90)):
        centre = (minx + extent * rng.uniform(left, right), miny + extent * rng.uniform(0.18, 0.32))
        lakes.append(_blob(rng, centre, extent * 0.055))
    lake_union = shapely.union_all(lakes)
    wetlands = [lake.buffer(WETLAND_RING_M).difference(lake_union).difference(river) for lake in lakes]
    water_union = shapely.union_all([river, lake_union])
    reserved = shapely.union_all([water_union, *wetlands])

    # Land parcels: Voronoi cells of a jittered grid of seeds.
    per_side = max(4, round(extent / PARCEL_SPACING_M))
    step = extent / per_side
    centres = [
        (minx + (i + 0.5 + rng.uniform(-0.35, 0.35)) * step, miny + (j + 0.5 + rng.uniform(-0.35, 0.35)) * step)
        for i in range(per_side)
        for j in range(per_side)
    ]
    cells = [
        cell.intersection(frame)
        for cell in shapely.get_parts(shapely.voronoi_polygons(shapely.MultiPoint(centres), extend_to=frame))
    ]
    cells = [cell for cell in cells if not cell.is_empty]
    centroids = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    areas = np.array([c.area for c in cells])

    towns = [
        Point(minx + extent * rng.uniform(0.2, 0.4), miny + extent * rng.uniform(0.6, 0.85)),
        Point(minx + extent * rng.uniform(0.7, 0.88), miny + extent * rng.uniform(0.6, 0.85)),
    ]
    town_radius = extent * 0.095
    covers: list[Cover | None] = [None] * len(cells)
    for index, centroid in enumerate(centroids):
        if any(Point(centroid).distance(town) < town_radius for town in towns):
            covers[index] = Cover.URBAN

    # Rank the rest by elevation (plus noise): forest high, then shrub, grass, crops low.
    elevation = _terrain_at(waves, centroids[:, 0], centroids[:, 1]) + rng.normal(0, 0.35, len(cells))
    free = [i for i in np.argsort(-elevation) if covers[i] is None]
    land_area = float(areas[free].sum())
    cumulative = 0.0
    for index in free:
        share = cumulative / land_area
        if share < FOREST_SHARE:
            covers[index] = Cover.EVERGREEN if share < FOREST_SHARE * 0.3 else Cover.DECIDUOUS
        elif share < FOREST_SHARE + SHRUB_SHARE:
            covers[index] = Cover.SHRUB
        elif share < FOREST_SHARE + SHRUB_SHARE + GRASS_SHARE:
            covers[index] = Cover.GRASS
        else:
            covers[index] = Cover.WINTER_CROP if rng.random() < 0.5 else Cover.SUMMER_CROP
        cumulative += areas[index]
    # Gravel pits: small round parcels dug into valley fields, in each half, so both AOIs hold several.
    valley = [i for i in free if covers[i] in (Cover.GRASS, Cover.WINTER_CROP, Cover.SUMMER_CROP)]
    pits: dict[int, Polygon] = {}
    for west in (True, False):
        half = [i for i in free if (centroids[i, 0] < minx + extent * SPLIT_X) == west]
        bare_target = BARE_SHARE * float(areas[half].sum())
        in_half = set(half)
        for index in rng.permutation([i for i in valley if i in in_half]):
            if bare_target <= 0:
                break
            centre = (centroids[index, 0] + rng.normal(0, 20.0), centroids[index, 1] + rng.normal(0, 20.0))
            pit = _blob(rng, centre, rng.uniform(*PIT_RADIUS_M)).intersection(cells[index]).difference(reserved)
            pits[int(index)] = pit
            bare_target -= pit.area
    # Forest is mixed: deciduous stands scattered through the evergreen high ground and vice versa.
    for index, cover in enumerate(covers):
        if cover in (Cover.DECIDUOUS, Cover.EVERGREEN) and rng.random() < 0.15:
            covers[index] = Cover.EVERGREEN if cover == Cover.DECIDUOUS else Cover.DECIDUOUS

    parcels: list[Parcel] = []

    def add(geometry: BaseGeometry, cover: Cover) -> None:
        for part in _explode(geometry):
            parcels.append(Parcel(len(parcels), shapely.set_precision(part, 0.01), cover))

    for index, (cell, maybe_cover) in enumerate(zip(cells, covers, strict=True)):
        assert maybe_cover is not None
        pit = pits.get(index)
        add(cell.difference(reserved) if pit is None else cell.difference(reserved).difference(pit), maybe_cover)
        if pit is not None:
            add(pit, Cover.BARE)
    add(water_union.intersection(frame), Cover.WATER)
    # Each fringe is several stands (reed bed, sedge, wet meadow) with their own calendar and brightness, so a
    # model learns wetland from more than one example per AOI.
    for lake, wetland in zip(lakes, wetlands, strict=True):
        centre = lake.centroid
        start = rng.uniform(0, 2 * math.pi)
        for k in range(WETLAND_STANDS):
            angles = start + 2 * math.pi * np.linspace(k, k + 1, 9) / WETLAND_STANDS
            reach = extent  # far beyond the ring
            wedge = Polygon(
                [(centre.x, centre.y)]
                + [(centre.x + reach * math.cos(a), centre.y + reach * math.sin(a)) for a in angles]
            )
            add(wetland.intersection(wedge).intersection(frame), Cover.WETLAND)
    return Landscape(grid=grid, parcels=tuple(parcels))


@dataclass(frozen=True)
class LandscapeChange:
    parcel_id: int
    before: Cover
    after: Cover


def evolve_landscape(landscape: Landscape, *, seed: int) -> tuple[Landscape, tuple[LandscapeChange, ...]]:
    """The next year's landscape: towns grow into forest and fields, meadows are ploughed, crops rotate.

    Crop rotation changes the cover but not the class, so it is not a LULC change (as in reality).
    """
    rng = np.random.default_rng([seed, 8])
    urban = shapely.union_all([p.geometry for p in landscape.parcels if p.cover == Cover.URBAN]).buffer(60.0)
    changes: list[LandscapeChange] = []
    updated: list[Parcel] = []
    for parcel in landscape.parcels:
        after = parcel.cover
        near_town = parcel.geometry.intersects(urban)
        if parcel.cover in (Cover.DECIDUOUS, Cover.EVERGREEN) and near_town and rng.random() < 0.5:
            after = Cover.URBAN
        elif parcel.cover in (Cover.WINTER_CROP, Cover.SUMMER_CROP):
            if near_town and rng.random() < 0.4:
                after = Cover.URBAN
            elif rng.random() < 0.6:
                after = Cover.SUMMER_CROP if parcel.cover == Cover.WINTER_CROP else Cover.WINTER_CROP
        elif parcel.cover == Cover.GRASS and rng.random() < 0.08:
            after = Cover.WINTER_CROP
        if after != parcel.cover:
            changes.append(LandscapeChange(parcel.parcel_id, parcel.cover, after))
            updated.append(replace(parcel, cover=after))
        else:
            updated.append(parcel)
    return Landscape(grid=landscape.grid, parcels=tuple(updated)), tuple(changes)

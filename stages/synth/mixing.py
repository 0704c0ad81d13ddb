"""What each 10 m pixel is made of: fractions of (parcel, component) pairs, fixed for a whole period.

Three things make single pixels ambiguous while parcels stay distinct, as in real imagery:

- Persistent texture. Every pixel of a parcel holds a fraction of one of two secondary components of its
  cover (a forest pixel: a gap with shrubby understory, or a tree of the other leaf type; a field pixel: a
  grassy strip or bare soil) and a brightness offset. Both stay the same all year, so averaging over time
  keeps them; averaging over the parcel removes them.
- Mixed borders. Geometry is evaluated at `SUPERSAMPLING` x the pixel resolution and averaged, so a pixel
  on a parcel border mixes both parcels by area; its label is still the parcel under its centre.
- Settlements. A town parcel is a mosaic of lots of 20 x 25 m (tile and concrete roofs, lawns, garden
  trees, paved yards) cut by streets; a pixel of roof looks like bare ground, one of lawn like a meadow.
  Only the mixture around a pixel says "town".

The result is a sparse matrix: one row per pixel, one column per (parcel, component), so rendering a
date is one sparse product with that date's component spectra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio import features
from scipy import ndimage, sparse

from deep_lulc.shared.geo.grids import GeoBox
from deep_lulc.stages.synth.landscape import Cover, Landscape
from deep_lulc.stages.synth.phenology import COMPONENTS, Component, Material

SUPERSAMPLING = 4
# Fine rows rasterised at a time, so a 4096 px scene needs no 16k x 16k array.
FINE_PIXELS_PER_STRIP = 1 << 21


@dataclass(frozen=True)
class Texture:
    """Secondary components of a cover: `positive` where the texture field is above zero, else `negative`.

    A pixel holds `amplitude * (|field| - TEXTURE_THRESHOLD)` (clipped to 0..1) of the secondary component:
    most pixels are the cover itself, some are partly, a few wholly, the secondary (a gap, a grassy strip).
    """

    positive: Component
    negative: Component
    amplitude: float


TEXTURE: dict[Cover, Texture] = {
    Cover.WINTER_CROP: Texture(Cover.GRASS, Material.SOIL, 0.80),
    Cover.SUMMER_CROP: Texture(Cover.GRASS, Material.SOIL, 0.80),
    Cover.GRASS: Texture(Material.SOIL, Cover.SHRUB, 0.70),
    Cover.DECIDUOUS: Texture(Cover.SHRUB, Cover.EVERGREEN, 0.60),
    Cover.EVERGREEN: Texture(Cover.SHRUB, Cover.DECIDUOUS, 0.60),
    Cover.SHRUB: Texture(Cover.DECIDUOUS, Material.SOIL, 0.50),
    Cover.WATER: Texture(Cover.WATER, Cover.WATER, 0.0),
    Cover.WETLAND: Texture(Cover.WATER, Cover.GRASS, 0.55),
    Cover.BARE: Texture(Cover.SHRUB, Material.SOIL, 0.40),
    Cover.URBAN: Texture(Material.ASPHALT, Material.ASPHALT, 0.0),  # unused: towns are lot mosaics
}
TEXTURE_THRESHOLD = 0.5
TEXTURE_SIGMA_PX = 1.0
BRIGHTNESS_TEXTURE = 0.07

LOT_M = (20.0, 25.0)
STREET_SPACING_M = (110.0, 140.0)
STREET_WIDTH_M = 5.0
LOT_TABLE = 256  # lots repeat every 256 lots (3.8 km x 5.1 km): invisible at the scene's scale
# What a lot is, and how often.
LOT_MIX: tuple[tuple[Component, float], ...] = (
    (Material.ROOF_TILE, 0.30),
    (Material.ROOF_GREY, 0.18),
    (Cover.GRASS, 0.30),
    (Cover.DECIDUOUS, 0.16),
    (Material.ASPHALT, 0.06),
)

_COLUMN = {component: i for i, component in enumerate(COMPONENTS)}
_COVERS = tuple(Cover)
_PRIMARY = np.array([_COLUMN[c] for c in _COVERS])
_POSITIVE = np.array([_COLUMN[TEXTURE[c].positive] for c in _COVERS])
_NEGATIVE = np.array([_COLUMN[TEXTURE[c].negative] for c in _COVERS])
_AMPLITUDE = np.array([TEXTURE[c].amplitude for c in _COVERS])
_URBAN = _COVERS.index(Cover.URBAN)


@dataclass(frozen=True)
class Fields:
    """Per-pixel and per-lot randomness of one seed; shared by both periods, so roofs and gaps stay put."""

    texture: np.ndarray  # (H, W) zero-mean, unit variance: sign picks the secondary, size its fraction
    brightness: np.ndarray  # (H, W) multiplicative offset around 1
    lot_component: np.ndarray  # (LOT_TABLE, LOT_TABLE) column into COMPONENTS
    lot_gain: np.ndarray  # (LOT_TABLE, LOT_TABLE)
    street_angle: float

    @staticmethod
    def draw(grid: GeoBox, *, seed: int) -> Fields:
        rng = np.random.default_rng([seed, 5])
        shape = (grid.height, grid.width)
        texture = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=TEXTURE_SIGMA_PX)
        brightness = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=TEXTURE_SIGMA_PX)
        components = np.array([_COLUMN[c] for c, _ in LOT_MIX])
        shares = np.array([share for _, share in LOT_MIX])
        lots = rng.choice(components, size=(LOT_TABLE, LOT_TABLE), p=shares / shares.sum())
        return Fields(
            texture=texture / max(float(texture.std()), 1e-9),
            brightness=1.0 + BRIGHTNESS_TEXTURE * brightness / max(float(brightness.std()), 1e-9),
            lot_component=lots,
            lot_gain=rng.uniform(0.8, 1.2, (LOT_TABLE, LOT_TABLE)),
            street_angle=float(rng.uniform(0.0, math.pi / 2)),
        )


def _textured(
    pixel: np.ndarray, parcel: np.ndarray, cover: np.ndarray, fields: Fields, weight: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of `pixel` (flat indices) that hold `parcel`: its primary component and one secondary."""
    t = fields.texture.ravel()[pixel]
    gain = fields.brightness.ravel()[pixel] * weight
    fraction = np.clip(_AMPLITUDE[cover] * (np.abs(t) - TEXTURE_THRESHOLD), 0.0, 1.0)
    secondary = np.where(t > 0, _POSITIVE[cover], _NEGATIVE[cover])
    width = len(COMPONENTS)
    rows = np.concatenate([pixel, pixel])
    cols = np.concatenate([parcel * width + _PRIMARY[cover], parcel * width + secondary])
    return rows, cols, np.concatenate([(1.0 - fraction) * gain, fraction * gain])


def _town(fine_rows: np.ndarray, fine_cols: np.ndarray, grid: GeoBox, fields: Fields) -> tuple[np.ndarray, np.ndarray]:
    """Component column and gain of town sub-pixels at fine (row, col): lots on a rotated lattice, streets."""
    step = grid.affine.a / SUPERSAMPLING
    x = grid.affine.c + (fine_cols + 0.5) * step
    y = grid.affine.f - (fine_rows + 0.5) * step
    cos, sin = math.cos(fields.street_angle), math.sin(fields.street_angle)
    u, v = x * cos + y * sin, -x * sin + y * cos
    lot_u = np.floor(u / LOT_M[0]).astype(np.int64) % LOT_TABLE
    lot_v = np.floor(v / LOT_M[1]).astype(np.int64) % LOT_TABLE
    component = fields.lot_component[lot_u, lot_v]
    gain = fields.lot_gain[lot_u, lot_v]
    street = (np.mod(u, STREET_SPACING_M[0]) < STREET_WIDTH_M) | (np.mod(v, STREET_SPACING_M[1]) < STREET_WIDTH_M)
    component = np.where(street, _COLUMN[Material.ASPHALT], component)
    return component, np.where(street, 1.0, gain)


def _fine_parcels(landscape: Landscape, row0: int, rows: int) -> np.ndarray:
    """Parcel index at the fine grid for coarse rows [row0, row0 + rows)."""
    grid = landscape.grid
    pixel, left, top = grid.affine.a, grid.affine.c, grid.affine.f
    step = pixel / SUPERSAMPLING
    transform = Affine(step, 0.0, left, 0.0, -step, top - row0 * pixel)
    shapes = ((p.geometry, i + 1) for i, p in enumerate(landscape.parcels))
    shape = (rows * SUPERSAMPLING, grid.width * SUPERSAMPLING)
    burned = features.rasterize(shapes, out_shape=shape, transform=transform, dtype="int32")
    holes = burned == 0
    if holes.any():  # float slivers between cells: take the nearest parcel
        _, (near_rows, near_cols) = ndimage.distance_transform_edt(holes, return_indices=True)
        burned = burned[near_rows, near_cols]
    return np.asarray(burned, dtype=np.int64) - 1


def mixing_matrix(landscape: Landscape, fields: Fields) -> sparse.csr_matrix:
    """(pixels, parcels x components) fractions; row `r * size + c` is pixel (r, c) of the scene grid."""
    grid = landscape.grid
    size, factor = grid.width, SUPERSAMPLING
    cover_of = np.array([_COVERS.index(p.cover) for p in landscape.parcels])
    strip = max(1, min(size, FINE_PIXELS_PER_STRIP // (size * factor * factor)))
    columns = len(landscape.parcels) * len(COMPONENTS)
    strips: list[sparse.csr_matrix] = []
    for row0 in range(0, size, strip):
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        rows = min(strip, size - row0)
        fine = _fine_parcels(landscape, row0, rows)
        blocks = fine.reshape(rows, factor, size, factor)
        first = blocks[:, 0, :, 0]
        whole = (blocks.min(axis=(1, 3)) == first) & (blocks.max(axis=(1, 3)) == first)
        simple = whole & (cover_of[first] != _URBAN)
        offset = row0 * size
        # Pixels inside one parcel outside towns: two entries each.
        pixel = np.flatnonzero(simple)
        parcel = first.ravel()[pixel]
        parts.append(_textured(pixel + offset, parcel, cover_of[parcel], fields, 1.0))
        # Border and town pixels: every sub-pixel on its own.
        r, c = np.nonzero(~simple)
        sub_r = (r[:, None] * factor + np.arange(factor)[None, :]).repeat(factor, axis=1).ravel()
        sub_c = np.tile(c[:, None] * factor + np.arange(factor)[None, :], (1, factor)).ravel()
        sub_parcel = fine[sub_r, sub_c]
        sub_pixel = (sub_r // factor) * size + sub_c // factor + offset
        town = cover_of[sub_parcel] == _URBAN
        land = ~town
        parts.append(_textured(sub_pixel[land], sub_parcel[land], cover_of[sub_parcel[land]], fields, 1.0 / factor**2))
        component, gain = _town(sub_r[town] + row0 * factor, sub_c[town], grid, fields)
        parts.append((sub_pixel[town], sub_parcel[town] * len(COMPONENTS) + component, gain / factor**2))
        # One strip's entries at a time, summed per (pixel, column), so memory follows the strip, not the scene.
        values = np.concatenate([p[2] for p in parts]).astype(np.float32)
        at = (np.concatenate([p[0] for p in parts]) - offset, np.concatenate([p[1] for p in parts]))
        block = sparse.csr_matrix((values, at), shape=(rows * size, columns))
        block.sum_duplicates()
        strips.append(block)
    matrix: sparse.csr_matrix = sparse.vstack(strips, format="csr")
    return matrix

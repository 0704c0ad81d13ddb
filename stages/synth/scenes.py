"""One Sentinel-2 L2A acquisition over the landscape: surface, sensor noise, clouds, shadows, swath edges, SCL.

Everything atmospheric is placed on the 20 m grid of the SCL band and repeated onto the 10 m grid, so
the SCL flags exactly the pixels the generator clouded (what a cloud-mask test needs). The surface is
each pixel's fixed mixture of components (`mixing`: texture, borders resolved at 2.5 m, town mosaics)
times that date's component spectra.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import ndimage, sparse

from deep_lulc.shared.geo.grids import GeoBox
from deep_lulc.stages.synth.landscape import Landscape
from deep_lulc.stages.synth.mixing import Fields, mixing_matrix
from deep_lulc.stages.synth.phenology import N_BANDS, ParcelTraits, component_reflectance

CLOUD = np.array([0.42, 0.41, 0.42, 0.46, 0.33, 0.24])
REVISIT_DAYS = 5
SENSOR_NOISE = 0.003

# SCL codes this generator writes.
SCL_NODATA, SCL_SHADOW, SCL_VEGETATION, SCL_NOT_VEGETATED, SCL_WATER, SCL_UNCLASSIFIED = 0, 3, 4, 5, 6, 7
SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_CIRRUS = 8, 9, 10


class Sky(StrEnum):
    CLEAR = "clear"
    SCATTERED = "scattered"
    OVERCAST = "overcast"


@dataclass(frozen=True)
class Acquisition:
    index: int
    datetime: dt.datetime
    platform: str  # "sentinel-2a" / "sentinel-2b"
    sky: Sky
    swath_edge: bool


def plan_acquisitions(*, seed: int, year: int, count: int) -> tuple[Acquisition, ...]:
    """`count` dates spread over the year on the 5-day revisit; a fixed share of clear and cloudy skies."""
    rng = np.random.default_rng([seed, year, 3])
    phase = int(rng.integers(0, REVISIT_DAYS))
    first = dt.date(year, 1, 1) + dt.timedelta(days=phase)
    slots = (dt.date(year, 12, 31) - first).days // REVISIT_DAYS + 1
    chosen = np.unique(np.round(np.linspace(0, slots - 1, count) + rng.uniform(-0.4, 0.4, count)).astype(int))
    chosen = np.clip(chosen, 0, slots - 1)
    n = len(chosen)
    n_clear, n_overcast = round(0.42 * n), round(0.2 * n)
    skies = np.array([Sky.CLEAR] * n_clear + [Sky.OVERCAST] * n_overcast + [Sky.SCATTERED] * (n - n_clear - n_overcast))
    skies = skies[rng.permutation(n)]
    cloudy = np.flatnonzero(skies != Sky.CLEAR)
    edges = set(rng.choice(cloudy, size=min(len(cloudy), max(1, round(0.2 * n))), replace=False).tolist())
    clear = np.flatnonzero(skies == Sky.CLEAR)
    if len(clear) >= 4:
        edges.add(int(clear[0]))  # one otherwise-clear date loses a strip to the swath edge
    acquisitions = []
    for i, slot in enumerate(chosen):
        day = first + dt.timedelta(days=int(slot) * REVISIT_DAYS)
        moment = dt.datetime(day.year, day.month, day.day, 10, 0, 31, tzinfo=dt.UTC) + dt.timedelta(seconds=int(slot))
        platform = "sentinel-2a" if slot % 2 == 0 else "sentinel-2b"
        acquisitions.append(Acquisition(i, moment, platform, Sky(skies[i]), i in edges))
    return tuple(acquisitions)


@dataclass(frozen=True)
class SceneContext:
    """What stays the same for every date of one period: the pixels' mixtures and the parcels' traits."""

    landscape: Landscape
    traits: ParcelTraits
    mixing: sparse.csr_matrix  # (pixels, parcels x components), see `mixing.mixing_matrix`
    seed: int
    year: int

    @staticmethod
    def build(landscape: Landscape, *, seed: int, year: int) -> SceneContext:
        fields = Fields.draw(landscape.grid, seed=seed)
        traits = ParcelTraits.draw(len(landscape.parcels), np.random.default_rng([seed, year, 2]))
        return SceneContext(landscape, traits, mixing_matrix(landscape, fields), seed, year)


@dataclass(frozen=True)
class Scene:
    """Reflectance and masks of one acquisition; `nodata` pixels have no reflectance (NaN)."""

    acquisition: Acquisition
    reflectance_10m: np.ndarray  # (4, H, W) float32: B02 B03 B04 B08
    reflectance_20m: np.ndarray  # (2, H/2, W/2) float32: B11 B12
    scl: np.ndarray  # (H/2, W/2) uint8
    cloud: np.ndarray  # (H/2, W/2) bool: opaque, medium and cirrus clouds placed
    shadow: np.ndarray  # (H/2, W/2) bool: cloud shadows placed (outside clouds)
    nodata: np.ndarray  # (H/2, W/2) bool: outside the swath

    @property
    def invalid_fraction(self) -> float:
        return float((self.cloud | self.shadow | self.nodata).mean())

    @property
    def cloud_cover_percent(self) -> float:
        data = ~self.nodata
        return 0.0 if not data.any() else float(100.0 * (self.cloud & data).sum() / data.sum())


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="wrap")
    return np.asarray((field - field.mean()) / max(float(field.std()), 1e-9))


def _upsample(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask.repeat(2, axis=0).repeat(2, axis=1))


def _coarsen(values: np.ndarray) -> np.ndarray:
    """Mean over 2x2 blocks of the last two axes."""
    *lead, h, w = values.shape
    return np.asarray(values.reshape(*lead, h // 2, 2, w // 2, 2).mean(axis=(-3, -1)))


def render_scene(context: SceneContext, acquisition: Acquisition) -> Scene:
    """Simulate one acquisition; deterministic per (seed, year, acquisition index)."""
    rng = np.random.default_rng([context.seed, context.year, acquisition.index, 1])
    grid: GeoBox = context.landscape.grid
    doy = acquisition.datetime.timetuple().tm_yday

    spectra = component_reflectance(context.landscape, context.traits, doy).astype(np.float32)
    mixed = context.mixing @ spectra.reshape(-1, N_BANDS)  # (H * W, 6)
    surface = np.ascontiguousarray(mixed.T).reshape(N_BANDS, grid.height, grid.width)
    surface = surface + rng.normal(0.0, SENSOR_NOISE, surface.shape).astype(np.float32)
    surface_20m = _coarsen(surface)  # (6, H/2, W/2)

    half = grid.width // 2
    shape20 = (half, half)
    cloud = np.zeros(shape20, dtype=bool)
    cloud_high = np.zeros(shape20, dtype=bool)
    cirrus = np.zeros(shape20, dtype=bool)
    shadow = np.zeros(shape20, dtype=bool)
    thickness = np.zeros(shape20, dtype=np.float32)
    if acquisition.sky != Sky.CLEAR:
        cover = rng.uniform(0.02, 0.3) if acquisition.sky == Sky.SCATTERED else rng.uniform(0.45, 0.95)
        field = _smooth_field(rng, shape20, sigma=rng.uniform(4.0, 10.0)) + 0.5 * _smooth_field(rng, shape20, 2.0)
        cloud = field > np.quantile(field, 1.0 - cover)
        cloud_high = field > np.quantile(field, 1.0 - 0.6 * cover)
        thickness = np.clip((field - np.quantile(field, 1.0 - cover)) / 1.5, 0.0, 1.0).astype(np.float32)
        if rng.random() < 0.35:
            haze = _smooth_field(rng, shape20, sigma=12.0)
            cirrus = (haze > np.quantile(haze, 1.0 - rng.uniform(0.05, 0.2))) & ~cloud
        offset = int(rng.integers(5, 13))  # shadow displacement from cloud height and sun angle
        cast = np.zeros(shape20, dtype=bool)
        cast[offset:, : half - offset // 2] = cloud[: half - offset, offset // 2 :]
        shadow = cast & ~cloud & ~cirrus

    nodata = np.zeros(shape20, dtype=bool)
    if acquisition.swath_edge:
        rows, cols = np.mgrid[0:half, 0:half]
        slope = rng.uniform(-0.25, 0.25)
        edge = rng.uniform(0.6, 0.9) * half
        across = cols + slope * (rows - half / 2)
        nodata = across > edge if rng.random() < 0.5 else across < half - edge

    scl = np.full(shape20, SCL_NOT_VEGETATED, dtype=np.uint8)
    blue, green, red, nir = surface_20m[0], surface_20m[1], surface_20m[2], surface_20m[3]
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    scl[ndvi > 0.35] = SCL_VEGETATION
    scl[(green > nir) & (blue > 0.0)] = SCL_WATER
    scl[rng.random(shape20) < 0.003] = SCL_UNCLASSIFIED
    scl[shadow] = SCL_SHADOW
    scl[cirrus] = SCL_CIRRUS
    scl[cloud] = SCL_CLOUD_MEDIUM
    scl[cloud_high] = SCL_CLOUD_HIGH
    scl[nodata] = SCL_NODATA

    cloud_10 = _upsample(cloud)
    cirrus_10 = _upsample(cirrus)
    shadow_10 = _upsample(shadow)
    thickness_10 = _upsample(thickness)
    brightness = rng.uniform(0.85, 1.05)

    def atmosphere(
        values: np.ndarray, cloudy: np.ndarray, hazy: np.ndarray, dark: np.ndarray, thick: np.ndarray, bands: slice
    ) -> np.ndarray:
        veil = (0.55 + 0.45 * thick)[None] * cloudy[None]
        cloud_spectrum = (brightness * CLOUD[bands])[:, None, None].astype(np.float32)
        out = values * (1 - veil) + cloud_spectrum * veil
        out = np.where(hazy[None], out * 0.85 + 0.06, out)
        return np.asarray(np.where(dark[None], out * 0.35 + 0.004, out), dtype=np.float32)

    reflectance_10m = atmosphere(surface[:4], cloud_10, cirrus_10, shadow_10, thickness_10, slice(0, 4))
    reflectance_20m = atmosphere(surface_20m[4:], cloud, cirrus, shadow, thickness, slice(4, 6))
    reflectance_10m[:, _upsample(nodata)] = np.nan
    reflectance_20m[:, nodata] = np.nan
    return Scene(
        acquisition=acquisition,
        reflectance_10m=reflectance_10m,
        reflectance_20m=reflectance_20m,
        scl=scl,
        cloud=(cloud | cirrus) & ~nodata,
        shadow=shadow & ~nodata,
        nodata=nodata,
    )

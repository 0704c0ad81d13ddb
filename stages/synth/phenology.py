"""Surface reflectance of each cover through the year, for the six bands B02 B03 B04 B08 B11 B12.

Each cover mixes a few endmember spectra with fractions that follow its calendar. The calendars are
what makes classes separable only through time: winter crops green up in spring and are harvested in
July, maize is bare until May and green until September, meadows stay green but drop at each mowing,
deciduous forest is leafless in winter. Each parcel shifts its green-up and, independently, its
harvest or leaf fall by one to three weeks and scales its brightness by up to +-14 %, as real fields do.
Materials are the surfaces that only occur inside parcels (roofs, asphalt, bare patches): `mixing`
places them and the covers' secondary components below the pixel scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from deep_lulc.stages.synth.landscape import Cover, Landscape

# Endmember reflectances, bands B02 B03 B04 B08 B11 B12 (typical values from spectral libraries).
SOIL = np.array([0.075, 0.105, 0.135, 0.215, 0.300, 0.245])
GREEN = np.array([0.030, 0.075, 0.035, 0.440, 0.215, 0.105])
DRY = np.array([0.070, 0.100, 0.125, 0.250, 0.330, 0.240])
BROADLEAF_ON = np.array([0.025, 0.055, 0.030, 0.360, 0.170, 0.075])
BROADLEAF_OFF = np.array([0.050, 0.070, 0.075, 0.210, 0.230, 0.150])
CONIFER = np.array([0.020, 0.040, 0.025, 0.255, 0.120, 0.050])
WATER = np.array([0.055, 0.065, 0.040, 0.022, 0.010, 0.007])
URBAN = np.array([0.095, 0.105, 0.115, 0.165, 0.225, 0.205])
BARE = np.array([0.130, 0.165, 0.205, 0.255, 0.345, 0.305])
# Roofs are chosen close to bare ground (tiles and concrete are fired clay and gravel), so a pixel of roof
# alone looks like a gravel pit; asphalt is dark and flat.
ROOF_TILE = BARE
ROOF_GREY = np.array([0.140, 0.160, 0.180, 0.235, 0.305, 0.270])
ASPHALT = np.array([0.065, 0.072, 0.078, 0.095, 0.115, 0.108])
N_BANDS = 6


class Material(StrEnum):
    """Surfaces below the parcel scale that are no cover of their own."""

    SOIL = "soil"
    ROOF_TILE = "roof_tile"
    ROOF_GREY = "roof_grey"
    ASPHALT = "asphalt"


MATERIAL_SPECTRUM: dict[Material, np.ndarray] = {
    Material.SOIL: SOIL,
    Material.ROOF_TILE: ROOF_TILE,
    Material.ROOF_GREY: ROOF_GREY,
    Material.ASPHALT: ASPHALT,
}
Component = Cover | Material
# Every component a pixel can be mixed from; its position is the component's column in `component_reflectance`.
COMPONENTS: tuple[Component, ...] = (*Cover, *Material)


def _sig(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _regrowth(days_since_cut: np.ndarray, recovery_days: float = 28.0) -> np.ndarray:
    """1 just after a mowing, falling linearly to 0 as the sward grows back."""
    inside = (days_since_cut >= 0) & (days_since_cut < recovery_days)
    return np.where(inside, 1.0 - days_since_cut / recovery_days, 0.0)


@dataclass(frozen=True)
class ParcelTraits:
    """Per-parcel randomness for one year: calendar shifts (spring and autumn apart), brightness, mowing dates."""

    shift_days: np.ndarray
    late_shift_days: np.ndarray
    gain: np.ndarray
    mowing_days: np.ndarray  # (n_parcels, 3)
    turbidity: np.ndarray

    @staticmethod
    def draw(n_parcels: int, rng: np.random.Generator) -> ParcelTraits:
        return ParcelTraits(
            shift_days=rng.normal(0.0, 11.0, n_parcels),
            late_shift_days=rng.normal(0.0, 9.0, n_parcels),
            gain=rng.uniform(0.86, 1.14, n_parcels),
            mowing_days=np.sort(rng.normal([150.0, 212.0, 268.0], 11.0, (n_parcels, 3)), axis=1),
            turbidity=rng.uniform(0.85, 1.35, n_parcels),
        )


def _mix(green: np.ndarray, dry: np.ndarray, background: np.ndarray) -> np.ndarray:
    soil = np.clip(1.0 - green - dry, 0.0, 1.0)
    return np.asarray(green[:, None] * GREEN + dry[:, None] * DRY + soil[:, None] * background)


def cover_reflectance(cover: Cover, doy: float, index: np.ndarray, traits: ParcelTraits) -> np.ndarray:
    """Reflectance (n, 6) on day-of-year `doy` of the parcels `index`, all of cover `cover`."""
    d = doy - traits.shift_days[index]
    late = d - traits.late_shift_days[index]  # harvest, ploughing, senescence
    n = len(index)
    if cover == Cover.WINTER_CROP:
        grown = 0.22 + 0.73 * _sig((d - 95.0) / 12.0)
        ripe = _sig((late - 178.0) / 5.0)
        harvested = _sig((late - 198.0) / 3.0)
        ploughed = _sig((late - 245.0) / 6.0)
        resown = 0.22 * _sig((late - 300.0) / 12.0)
        green = grown * (1 - ripe) * (1 - harvested) + resown * harvested
        dry = (grown * ripe * (1 - harvested) + 0.55 * harvested * (1 - ploughed)) * (1 - resown)
        spectra = _mix(green, dry, SOIL)
    elif cover == Cover.SUMMER_CROP:
        canopy = 0.9 * _sig((d - 168.0) / 10.0)
        ripe = _sig((late - 252.0) / 7.0)
        harvested = _sig((late - 278.0) / 4.0)
        green = canopy * (1 - ripe) * (1 - harvested)
        dry = 0.85 * ripe * (1 - harvested) + 0.25 * harvested
        spectra = _mix(green, dry, SOIL)
    elif cover == Cover.GRASS:
        vigour = 0.48 + 0.42 * _sig((d - 95.0) / 12.0) - 0.22 * _sig((late - 300.0) / 15.0)
        cut = np.ones(n)
        for k in range(3):
            cut *= 1.0 - 0.55 * _regrowth(doy - traits.mowing_days[index, k])
        green = vigour * cut
        dry = 0.12 + 0.5 * (vigour - green)
        spectra = _mix(green, dry, SOIL)
    elif cover == Cover.DECIDUOUS:
        leaves = _sig((d - 115.0) / 7.0) * (1 - _sig((late - 296.0) / 9.0))
        spectra = leaves[:, None] * BROADLEAF_ON + (1 - leaves[:, None]) * BROADLEAF_OFF
    elif cover == Cover.EVERGREEN:
        season = 1.0 + 0.08 * np.sin(2 * np.pi * (d - 110.0) / 365.0)
        spectra = season[:, None] * CONIFER
    elif cover == Cover.SHRUB:
        green = 0.33 + 0.25 * _sig((d - 110.0) / 12.0) * (1 - _sig((late - 290.0) / 15.0))
        spectra = _mix(green, np.full(n, 0.35), SOIL)
    elif cover == Cover.WATER:
        bloom = 1.0 + 0.25 * _sig((d - 170.0) / 20.0) * (1 - _sig((d - 250.0) / 20.0))
        spectra = traits.turbidity[index, None] * np.tile(WATER, (n, 1))
        spectra[:, 3] *= bloom  # algae raise the NIR a little in summer
    elif cover == Cover.WETLAND:
        reeds = _sig((d - 125.0) / 14.0) * (1 - _sig((late - 285.0) / 14.0))
        water = 0.5 - 0.3 * reeds
        vegetation = _mix(0.35 + 0.55 * reeds, 0.4 * (1 - reeds), SOIL)
        spectra = water[:, None] * WATER + (1 - water[:, None]) * vegetation
    elif cover == Cover.URBAN:
        spectra = np.tile(URBAN, (n, 1))
    elif cover == Cover.BARE:
        spectra = np.tile(BARE, (n, 1))
    else:  # pragma: no cover - Cover is closed
        raise ValueError(cover)
    return np.asarray(spectra * traits.gain[index, None])


def component_reflectance(landscape: Landscape, traits: ParcelTraits, doy: float) -> np.ndarray:
    """Reflectance (n_parcels, len(COMPONENTS), 6) of every component as it would look on every parcel.

    A meadow strip in a field follows that field's calendar shift and mowing dates, a roof its town's gain.
    """
    everyone = np.arange(len(landscape.parcels))
    result = np.empty((len(landscape.parcels), len(COMPONENTS), N_BANDS))
    for column, component in enumerate(COMPONENTS):
        if isinstance(component, Cover):
            result[:, column] = cover_reflectance(component, doy, everyone, traits)
        else:
            result[:, column] = MATERIAL_SPECTRUM[component][None, :] * traits.gain[:, None]
    return result


def parcel_reflectance(landscape: Landscape, traits: ParcelTraits, doy: float) -> np.ndarray:
    """Reflectance (n_parcels, 6) of every parcel on day-of-year `doy`."""
    covers = np.array([p.cover.value for p in landscape.parcels])
    result = np.zeros((len(landscape.parcels), N_BANDS))
    for cover in Cover:
        index = np.flatnonzero(covers == cover.value)
        if index.size:
            result[index] = cover_reflectance(cover, doy, index, traits)
    return result

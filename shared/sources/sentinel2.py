"""What providers disagree on in Sentinel-2 L2A STAC items, resolved in one place.

Each provider's side is data in `providers` (its `ProviderProfile`); this module resolves any item:

- Asset keys: Earth Search v1 names assets by common name (`red`, `swir16`, `scl`), Planetary Computer and
  Earth Search v0 by band id (`B04`, `SCL`).
- CRS: `proj:code` (projection v2) or `proj:epsg` (v1), on the item or on the asset.
- Scale/offset: Earth Search states them in `raster:bands`; Planetary Computer states none, yet its DN
  for processing baseline >= 04.00 still carry the +1000 BOA offset (reflectance = DN/10000 - 0.1).
- Platform spelling: `sentinel-2a` (Earth Search) vs `Sentinel-2A` (Planetary Computer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pystac

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.sources import providers


@dataclass(frozen=True)
class S2Band:
    """A band as ESA defines it; how a provider keys its asset is in the provider's profile."""

    band_id: str
    common_name: str
    center_wavelength_um: float
    full_width_half_max_um: float
    resolution_m: int


# The six bands the seed used, plus SCL; wavelengths are the S2A MSI centre values.
BANDS: tuple[S2Band, ...] = (
    S2Band("B02", "blue", 0.490, 0.098, 10),
    S2Band("B03", "green", 0.560, 0.045, 10),
    S2Band("B04", "red", 0.665, 0.038, 10),
    S2Band("B08", "nir", 0.842, 0.145, 10),
    S2Band("B11", "swir16", 1.610, 0.143, 20),
    S2Band("B12", "swir22", 2.190, 0.242, 20),
)
SCL_BAND = "SCL"
REFLECTANCE_BANDS: tuple[str, ...] = tuple(b.band_id for b in BANDS)
BAND_BY_ID = {b.band_id: b for b in BANDS}

REFLECTANCE_SCALE = 0.0001
BOA_OFFSET = -0.1  # applies from processing baseline 04.00 (2022-01-25) onwards
BOA_OFFSET_BASELINE = (4, 0)

# Keys by which each band appears, tried in this order (case-insensitive): the band id, each known
# provider's own key (from the registry, so a new profile's keys are found on any item), the STAC common
# name and the resolution-suffixed file names of SAFE-style listings. Resolution does not ask which
# provider an item came from: an ItemCollection file does not say, and Earth Search v0 keys like PC.
_ALIASES: dict[str, tuple[str, ...]] = {
    **{
        b.band_id: (
            b.band_id,
            *providers.asset_keys_for(b.band_id),
            b.common_name,
            f"{b.band_id}_10m",
            f"{b.band_id}_20m",
        )
        for b in BANDS
    },
    SCL_BAND: (SCL_BAND, *providers.asset_keys_for(SCL_BAND), "SCL_20m"),
}

# Scene Classification Layer codes (Sen2Cor).
SCL_CLASSES: dict[int, str] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}
DEFAULT_VALID_SCL: tuple[int, ...] = (4, 5, 6, 7, 11)


def asset_key_for(item: pystac.Item, band: str) -> str:
    """The asset key under which `item` stores `band` (a band id such as 'B04' or 'SCL')."""
    band = band.upper()
    if band not in _ALIASES:
        raise BadInputError(f"unknown Sentinel-2 band {band!r}", fix=f"use one of {', '.join(_ALIASES)}")
    by_lower = {key.lower(): key for key in item.assets}
    for alias in _ALIASES[band]:
        if alias.lower() in by_lower:
            return by_lower[alias.lower()]
    raise BadInputError(
        f"item {item.id} has no asset for band {band} (looked for {', '.join(_ALIASES[band])})",
        fix=f"use Sentinel-2 L2A items from {providers.provider_titles()}, or rename the assets",
    )


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """The processing baseline as (major, minor), from `s2:processing_baseline` or the product id."""
    props = item.properties
    text = props.get("s2:processing_baseline") or props.get("processing:version")
    if text is None:
        for candidate in (props.get("s2:product_uri"), props.get("s2:product_id"), item.id):
            match = re.search(r"_N(\d{2})(\d{2})_", str(candidate or ""))
            if match:
                return int(match.group(1)), int(match.group(2))
        return None
    match = re.match(r"^\s*(\d+)\.(\d+)", str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class ScaleOffset:
    scale: float
    offset: float
    source: str  # "raster:bands" or "baseline" — reported so users can audit the radiometry


def scale_offset(item: pystac.Item, band: str) -> ScaleOffset:
    """Scale and offset that turn DN into surface reflectance for one band of one item.

    `raster:bands` wins where present (the Earth Search collection's item_assets say offset 0 where
    the items say -0.1: trust the item). Without it, the processing baseline decides.
    """
    key = asset_key_for(item, band)
    raster_bands = item.assets[key].extra_fields.get("raster:bands")
    if raster_bands:
        first = raster_bands[0]
        if "scale" in first or "offset" in first:
            return ScaleOffset(float(first.get("scale", 1.0)), float(first.get("offset", 0.0)), "raster:bands")
    if band.upper() == SCL_BAND:
        return ScaleOffset(1.0, 0.0, "baseline")
    baseline = processing_baseline(item)
    offset = BOA_OFFSET if baseline is not None and baseline >= BOA_OFFSET_BASELINE else 0.0
    return ScaleOffset(REFLECTANCE_SCALE, offset, "baseline")


def epsg_of(item: pystac.Item, asset_key: str | None = None) -> int:
    """The EPSG code of an asset (or of the item), accepting `proj:code` and `proj:epsg`."""
    sources: list[dict[str, Any]] = []
    if asset_key is not None:
        sources.append(item.assets[asset_key].extra_fields)
    sources.append(item.properties)
    for fields in sources:
        code = fields.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:"):
            return int(code.split(":", 1)[1])
        epsg = fields.get("proj:epsg")
        if epsg is not None:
            return int(epsg)
    raise BadInputError(
        f"item {item.id} states no CRS (neither proj:code nor proj:epsg)",
        fix="use items with the projection extension",
    )


def normalized_platform(item: pystac.Item) -> str:
    """'sentinel-2a' for both 'sentinel-2a' and 'Sentinel-2A': the unit whose spelling a provider profile
    declares, else the lower-cased text (so that one acquisition listed by two providers is one)."""
    spelling = str(item.properties.get("platform", "")).strip()
    return providers.unit_of_platform(spelling) or spelling.lower()


def asset_transform(item: pystac.Item, asset_key: str) -> list[Any] | None:
    """The `proj:transform` an asset states for itself (its own resolution's); None where it states none."""
    stated: list[Any] | None = item.assets[asset_key].extra_fields.get("proj:transform") or None
    return stated


def item_transform(item: pystac.Item) -> list[Any] | None:
    """The `proj:transform` an item states for all its assets; None where it states none."""
    stated: list[Any] | None = item.properties.get("proj:transform") or None
    return stated


def cloud_cover(item: pystac.Item) -> float | None:
    """The item's `eo:cloud_cover` in percent; None where the provider states none."""
    value = item.properties.get("eo:cloud_cover")
    return float(value) if value is not None else None

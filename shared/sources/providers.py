"""STAC providers of Sentinel-2 L2A as data: one `ProviderProfile` per provider, declared once.

Earth Search v1 and Planetary Computer serve the same ESA products as differently shaped STAC items: asset
keys, platform spelling, where scale and offset are stated, whether hrefs need signing. Every module that
cares (band-key resolution and platform normalisation in `sentinel2`, `signing`, the `--sign` option, the
cube loaders and the synthetic catalog writer) reads these profiles instead of branching on a provider's
name, so a new provider is one entry in `PROVIDERS` (plus a test fixture and docs), not an edit per module.

This follows odc-stac, where a provider is a configuration dict (per collection: asset data types, nodata,
band aliases) plus an href patcher (`odc.stac.load(..., stac_cfg=..., patch_url=...)`). We do not use
odc-stac's configuration object as the profile itself because:

- it is keyed by collection id, and both providers call their collection `sentinel-2-l2a`: the key cannot
  tell them apart (and items reach `cube` from ItemCollection files and the synthetic catalog too);
- it is read by `odc.stac.load` alone, while a profile also drives the stackstac loader, the synthetic
  catalog, platform normalisation (deduplication across providers) and signing;
- it is an untyped `dict[str, Any]`, so a typo in a key would pass mypy and fail at load time;
- `patch_url` edits one href at a time, while our signers prepare a batch first (Planetary Computer: one
  SAS token per storage container, fetched under the project's retry policy and deadline).

What odc-stac needs is derived from the resolved asset keys in one function, `odc_stac_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from deep_lulc.shared.errors import BadInputError

# Where a provider's items state the DN -> reflectance scale and offset:
# - "raster:bands": per asset, in the raster extension (trust the item, not the collection's item_assets);
# - "baseline": nowhere; `sentinel2.scale_offset` applies 0.0001 and, from processing baseline 04.00 on,
#   the -0.1 BOA offset.
ScaleOffsetSource = Literal["raster:bands", "baseline"]

# Sentinel-2 units as the synthetic catalog and `sentinel2.normalized_platform` spell them (lower case).
_UNITS = ("sentinel-2a", "sentinel-2b", "sentinel-2c")


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only view, so that a profile (frozen) cannot be changed through one of its mappings either."""
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class ProviderProfile:
    """How one provider shapes its Sentinel-2 L2A items; every field is data read by the modules above.

    - `name`: the provider's choice value (`synth --asset-style`); `title`: how messages name it.
    - `stac_url`: the STAC API root, for examples and docs.
    - `collections`: its Sentinel-2 L2A collection ids, the first the one the synthetic catalog uses.
    - `asset_keys`: band id (`B04`, `SCL`) -> the key of the asset that holds it in this provider's items.
    - `platform_names`: lower-case unit (`sentinel-2a`) -> this provider's spelling of `platform`;
      `sentinel2.normalized_platform` maps every spelling back to its unit, which is how one acquisition
      listed by two providers is found to be one.
    - `scale_offset_from`: where its items state scale and offset (see `ScaleOffsetSource`).
    - `extra_properties`: item properties beyond the common set that its items carry, in the order the
      synthetic catalog writes them (`synth.items` knows how to fill each one).
    - `item_id_template`: `str.format` template of the synthetic catalog's item ids in this style, with the
      fields `unit` (`S2A`), `tile` (MGRS, `33TWM`), `moment` (acquisition datetime), `baseline` (`0510`)
      and `orbit` (relative orbit, `122`).
    - `signing`: the name of the signer its hrefs need (a key of `signing.SIGNERS`, `none` for public
      hrefs): the href patcher, as odc-stac's `patch_url`, looked up by name because signers import the
      network layer and this module must stay plain data.
    """

    name: str
    title: str
    stac_url: str
    collections: tuple[str, ...]
    asset_keys: Mapping[str, str]
    platform_names: Mapping[str, str]
    scale_offset_from: ScaleOffsetSource
    item_id_template: str
    signing: str
    extra_properties: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Keep read-only copies of the mappings: a frozen profile must not change through a shared dict."""
        object.__setattr__(self, "asset_keys", _frozen(self.asset_keys))
        object.__setattr__(self, "platform_names", _frozen(self.platform_names))

    def asset_key(self, band: str) -> str:
        """The asset key under which this provider's items hold `band` (a band id such as 'B04' or 'SCL')."""
        return self.asset_keys[band]

    def platform(self, unit: str) -> str:
        """This provider's spelling of a unit given in lower case ('sentinel-2a' -> 'Sentinel-2A' on PC)."""
        return self.platform_names[unit]

    @property
    def states_raster_bands(self) -> bool:
        """Whether its items state scale and offset per asset in `raster:bands` (the synthetic items then do too)."""
        return self.scale_offset_from == "raster:bands"


EARTH_SEARCH = ProviderProfile(
    name="earth-search",
    title="Earth Search",
    stac_url="https://earth-search.aws.element84.com/v1",
    collections=("sentinel-2-l2a", "sentinel-2-c1-l2a"),
    asset_keys={
        "B02": "blue",
        "B03": "green",
        "B04": "red",
        "B08": "nir",
        "B11": "swir16",
        "B12": "swir22",
        "SCL": "scl",
    },
    platform_names={unit: unit for unit in _UNITS},
    scale_offset_from="raster:bands",
    extra_properties=(
        "mgrs:utm_zone",
        "mgrs:latitude_band",
        "mgrs:grid_square",
        "grid:code",
        "earthsearch:boa_offset_applied",
    ),
    item_id_template="{unit}_{tile}_{moment:%Y%m%d}_0_L2A",
    signing="none",
)

PLANETARY_COMPUTER = ProviderProfile(
    name="planetary-computer",
    title="Planetary Computer",
    stac_url="https://planetarycomputer.microsoft.com/api/stac/v1",
    collections=("sentinel-2-l2a",),
    asset_keys={
        "B02": "B02",
        "B03": "B03",
        "B04": "B04",
        "B08": "B08",
        "B11": "B11",
        "B12": "B12",
        "SCL": "SCL",
    },
    platform_names={unit: "Sentinel-2" + unit[-1].upper() for unit in _UNITS},
    scale_offset_from="baseline",
    item_id_template="{unit}_MSIL2A_{moment:%Y%m%dT%H%M%S}_N{baseline}_R{orbit}_T{tile}_{moment:%Y%m%dT%H%M%S}",
    signing="planetary-computer",
)

# The registry, in the order messages list providers and band-key resolution tries their keys.
PROVIDERS: dict[str, ProviderProfile] = {profile.name: profile for profile in (EARTH_SEARCH, PLANETARY_COMPUTER)}


def get_provider(name: str) -> ProviderProfile:
    """The profile of provider `name`, or a BadInputError that lists the known ones."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise BadInputError(
            f"unknown STAC provider {name!r}",
            fix=f"use one of {', '.join(PROVIDERS)} (profiles in deep_lulc.shared.sources.providers)",
        ) from None


def provider_titles() -> str:
    """The known providers for a message: 'Earth Search or Planetary Computer' ('A, B or C' for three)."""
    titles = [profile.title for profile in PROVIDERS.values()]
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} or {titles[-1]}"


def asset_keys_for(band: str) -> tuple[str, ...]:
    """The keys the known providers give `band`, in registry order, without repeats and without the band id
    itself (which `sentinel2` tries first for every item)."""
    keys: list[str] = []
    for profile in PROVIDERS.values():
        key = profile.asset_keys.get(band)
        if key is not None and key != band and key not in keys:
            keys.append(key)
    return tuple(keys)


def unit_of_platform(spelling: str) -> str | None:
    """The lower-case unit of a provider's platform spelling ('Sentinel-2A' -> 'sentinel-2a'); None where no
    profile spells it so (`sentinel2.normalized_platform` then lower-cases it)."""
    for profile in PROVIDERS.values():
        for unit, name in profile.platform_names.items():
            if name == spelling:
                return unit
    return None


def odc_stac_config(asset_keys: Mapping[str, str]) -> dict[str, Any]:
    """odc-stac's `stac_cfg` for items whose bands sit under `asset_keys` (band id -> asset key, as resolved
    for the items or as a profile's `asset_keys`): reflectance uint16, SCL uint8, 0 as nodata.

    It applies to every collection (`"*"`), not per collection id: the providers share the id
    `sentinel-2-l2a`, and items from ItemCollection files or the synthetic catalog may carry any id.
    Planetary Computer states no `raster:bands`, so without it odc-stac would guess data type and nodata.
    """
    return {
        "*": {
            "assets": {
                "*": {"nodata": 0, "data_type": "uint16"},
                asset_keys["SCL"]: {"nodata": 0, "data_type": "uint8"},
            }
        }
    }


def synthetic_marks(*, sky: str) -> dict[str, Any]:
    """The fields that mark an item as made by `deep-lulc synth` (and its simulated sky), so a catalog of
    synthetic scenes shaped like a provider's is never mistaken for that provider's acquisitions."""
    return {"deep-lulc:synthetic": True, "deep-lulc:sky": sky}

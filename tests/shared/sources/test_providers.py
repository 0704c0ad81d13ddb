"""Provider profiles are the one place a provider is declared: the registry resolves real items of every
provider, writes synthetic items like them, agrees with the CLI's choice types, and refuses unknown names."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any, get_args

import pystac
import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.sources import providers, sentinel2, signing
from deep_lulc.shared.sources.providers import PROVIDERS, ProviderProfile
from deep_lulc.stages.cube import loaders
from deep_lulc.stages.synth import stage as synth
from deep_lulc.stages.synth.params import AssetStyle, SynthParams

from ...conftest import REALDATA

STAC = REALDATA / "stac"
ALL_BANDS = (*sentinel2.REFLECTANCE_BANDS, sentinel2.SCL_BAND)
# Recorded real items of each provider: (file, index in a FeatureCollection); the first one of each is from
# the provider's first collection and carries all of its `extra_properties`.
RECORDED: dict[str, list[tuple[Path, int]]] = {
    "earth-search": [
        (STAC / "earth-search-v1/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json", 0),
        (STAC / "earth-search-v1/sentinel-2-c1-l2a/S2B_T24MVV_20250731T130245_L2A.json", 0),
        (STAC / "earth-search-v1/sentinel-2-c1-l2a/items_T13TDE_2024-03-31_2024-04-22_10-dates.geojson", 3),
    ],
    "planetary-computer": [
        (STAC / "planetary-computer/sentinel-2-l2a/items_T13TDE_2024-08-23_2024-08-25_2-items.json", 1),
        (STAC / "planetary-computer/sentinel-2-l2a/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json", 0),
    ],
}
# Whole listings of one provider each, as `cube` would load them.
LISTINGS = {
    "earth-search": STAC / "earth-search-v1/sentinel-2-c1-l2a/items_T13TDE_2024-03-31_2024-04-22_10-dates.geojson",
    "planetary-computer": STAC / "planetary-computer/sentinel-2-l2a/items_T13TDE_2024-08-23_2024-08-25_2-items.json",
}


def load(path: Path, index: int = 0) -> pystac.Item:
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("type") == "FeatureCollection":
        document = document["features"][index]
    return pystac.Item.from_dict(document)


def keyed_like(profile: ProviderProfile, item_id: str) -> pystac.Item:
    """An in-memory item whose assets are keyed as `profile` keys them (no files behind them)."""
    item = pystac.Item(item_id, None, None, dt.datetime(2023, 6, 1, tzinfo=dt.UTC), {})
    for key in profile.asset_keys.values():
        item.add_asset(key, pystac.Asset(f"{key}.tif"))
    return item


def test_the_registry_knows_both_providers() -> None:
    assert list(PROVIDERS) == ["earth-search", "planetary-computer"]
    assert all(name == profile.name for name, profile in PROVIDERS.items())
    for profile in PROVIDERS.values():
        assert set(profile.asset_keys) == set(ALL_BANDS), profile.name
        assert profile.collections[0] == "sentinel-2-l2a", "search's default collection serves every provider"


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    ("name", "path", "index"), [(name, path, index) for name, found in RECORDED.items() for path, index in found]
)
def test_the_profile_describes_its_providers_recorded_items(name: str, path: Path, index: int) -> None:
    profile = providers.get_provider(name)
    item = load(path, index)
    assert {band: sentinel2.asset_key_for(item, band) for band in ALL_BANDS} == dict(profile.asset_keys)
    assert item.collection_id in profile.collections
    unit = sentinel2.normalized_platform(item)
    assert profile.platform(unit) == item.properties["platform"]
    assert sentinel2.scale_offset(item, "B04").source == profile.scale_offset_from
    if (path, index) == RECORDED[name][0]:
        assert all(prop in item.properties for prop in profile.extra_properties)


@pytest.mark.needs_shared
@pytest.mark.parametrize("name", list(LISTINGS))
def test_cube_loader_keys_come_from_the_profile(name: str) -> None:
    profile = providers.get_provider(name)
    items = list(pystac.ItemCollection.from_file(str(LISTINGS[name])))
    keys = loaders.asset_keys(items)
    assert keys == dict(profile.asset_keys)
    assert providers.odc_stac_config(keys) == providers.odc_stac_config(profile.asset_keys)


def test_a_mix_of_providers_is_refused_naming_the_known_ones() -> None:
    items = [keyed_like(profile, f"item-{name}") for name, profile in PROVIDERS.items()]
    fix = r"build a cube from one provider's items \(Earth Search or Planetary Computer\), not a mix"
    with pytest.raises(BadInputError, match=r"items item-earth-search and item-planetary-computer .*" + fix):
        loaders.asset_keys(items)


def test_odc_stac_config_types_scl_by_the_profiles_key() -> None:
    for profile in PROVIDERS.values():
        config = providers.odc_stac_config(profile.asset_keys)
        assert config == {
            "*": {
                "assets": {
                    "*": {"nodata": 0, "data_type": "uint16"},
                    profile.asset_key("SCL"): {"nodata": 0, "data_type": "uint8"},
                }
            }
        }


def test_an_unknown_provider_is_refused_with_the_known_names() -> None:
    with pytest.raises(
        BadInputError, match=r"unknown STAC provider 'sentinel-hub'; fix: use one of earth-search, planetary-computer"
    ):
        providers.get_provider("sentinel-hub")


def test_choice_types_agree_with_the_registry() -> None:
    """`--sign` and `--asset-style` are Literals (pydantic and the CLI need them); they must name what the
    registry and the signer table hold, or a new provider would be half-declared."""
    assert set(get_args(signing.Signing)) == set(signing.SIGNERS)
    assert set(signing.SIGNERS) == {"none"} | {profile.signing for profile in PROVIDERS.values()}
    assert set(get_args(AssetStyle)) == set(PROVIDERS)
    assert SynthParams().asset_style == "earth-search"


def test_sign_help_and_unknown_signers() -> None:
    assert signing.option_help() == (
        "Sign asset hrefs before use: planetary-computer appends a Planetary Computer SAS token "
        "(endpoint PC_SDK_SAS_URL, key PC_SDK_SUBSCRIPTION_KEY)."
    )
    item = keyed_like(providers.EARTH_SEARCH, "public")
    assert signing.sign_items([item], "none") == [item]
    with pytest.raises(BadInputError, match=r"unknown signing 'sas'; fix: use one of none, planetary-computer"):
        signing.sign_items([item], "sas")  # type: ignore[arg-type]


def test_platform_spellings_map_back_to_their_unit() -> None:
    """Deduplication across providers compares normalised platforms: every spelling must name one unit."""
    for profile in PROVIDERS.values():
        for unit, spelling in profile.platform_names.items():
            assert providers.unit_of_platform(spelling) == unit
            item = pystac.Item("x", None, None, dt.datetime(2023, 6, 1, tzinfo=dt.UTC), {"platform": f" {spelling}"})
            assert sentinel2.normalized_platform(item) == unit
    unknown = pystac.Item("y", None, None, dt.datetime(2023, 6, 1, tzinfo=dt.UTC), {"platform": "SENTINEL-2B"})
    assert sentinel2.normalized_platform(unknown) == "sentinel-2b"


def test_messages_list_every_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    assert providers.provider_titles() == "Earth Search or Planetary Computer"
    third = dataclasses.replace(providers.EARTH_SEARCH, name="copernicus", title="Copernicus Data Space")
    monkeypatch.setitem(PROVIDERS, third.name, third)
    assert providers.provider_titles() == "Earth Search, Planetary Computer or Copernicus Data Space"


def test_profiles_are_read_only() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        providers.EARTH_SEARCH.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        providers.EARTH_SEARCH.asset_keys["B04"] = "B04"  # type: ignore[index]


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_synthetic_items_are_shaped_by_the_profile(name: str, tmp_path: Path) -> None:
    profile = providers.get_provider(name)
    params = SynthParams(seed=2, size=128, dates=4, asset_style=name)
    synth.run(inputs={}, output=str(tmp_path), params=params)
    catalog = pystac.Catalog.from_file(str(tmp_path / "catalog.json"))
    collection = catalog.get_child(profile.collections[0])
    assert isinstance(collection, pystac.Collection)
    items = list(collection.get_items())
    assert items
    for item in items:
        assert {band: sentinel2.asset_key_for(item, band) for band in ALL_BANDS} == dict(profile.asset_keys)
        assert item.properties["platform"] in profile.platform_names.values()
        assert all(prop in item.properties for prop in profile.extra_properties)
        stated = any("raster:bands" in asset.extra_fields for asset in item.assets.values())
        assert stated == (profile.scale_offset_from == "raster:bands")
        assert sentinel2.scale_offset(item, "B04").source == profile.scale_offset_from

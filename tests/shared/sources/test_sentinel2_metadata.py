"""Provider quirks in real Sentinel-2 STAC items (../shared/realdata/stac): keys, CRS fields, radiometry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pystac
import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.sources import sentinel2

from ...conftest import REALDATA

pytestmark = pytest.mark.needs_shared  # real STAC metadata from ../shared/realdata
STAC = REALDATA / "stac"
ES_2020 = STAC / "earth-search-v1/sentinel-2-l2a/S2A_29RKH_20200219_0_L2A.json"
ES_2023 = STAC / "earth-search-v1/sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json"
ES_C1 = STAC / "earth-search-v1/sentinel-2-c1-l2a/S2B_T24MVV_20250731T130245_L2A.json"
PC_2019 = STAC / "planetary-computer/sentinel-2-l2a/S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"
PC_2024 = STAC / "planetary-computer/sentinel-2-l2a/items_T13TDE_2024-08-23_2024-08-25_2-items.json"
ES_V0 = STAC / "earth-search-v0-legacy/S2A_28QCH_20200714_0_L2A.json"


def load(path: Path, *, migrate: bool = True, index: int = 0) -> pystac.Item:
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("type") == "FeatureCollection":
        document = document["features"][index]
    return pystac.Item.from_dict(document, migrate=migrate)


@pytest.mark.parametrize(
    ("path", "band", "key"),
    [
        (ES_2023, "B04", "red"),
        (ES_2023, "B11", "swir16"),
        (ES_2023, "SCL", "scl"),
        (ES_C1, "B12", "swir22"),
        (PC_2019, "B08", "B08"),
        (PC_2019, "SCL", "SCL"),
        (ES_V0, "B02", "B02"),
    ],
)
def test_band_keys_resolve_across_providers(path: Path, band: str, key: str) -> None:
    assert sentinel2.asset_key_for(load(path), band) == key


def test_missing_band_names_the_item() -> None:
    item = load(ES_2023)
    del item.assets["red"]
    with pytest.raises(BadInputError, match=r"S2A_13TDE_20231008_0_L2A has no asset for band B04"):
        sentinel2.asset_key_for(item, "B04")


@pytest.mark.parametrize(("path", "epsg"), [(ES_2020, 32629), (ES_C1, 32724), (PC_2019, 32606), (ES_V0, 32628)])
@pytest.mark.parametrize("migrate", [True, False])
def test_crs_from_proj_epsg_or_proj_code(path: Path, epsg: int, migrate: bool) -> None:
    item = load(path, migrate=migrate)
    # pystac >= 1.12 rewrites proj:epsg to proj:code when it migrates; both spellings must work.
    if not migrate:
        assert "proj:epsg" in item.properties
        assert "proj:code" not in item.properties
    assert sentinel2.epsg_of(item) == epsg


def test_no_crs_is_an_error() -> None:
    item = load(ES_2023, migrate=False)
    item.properties.pop("proj:epsg", None)
    item.properties.pop("proj:code", None)
    with pytest.raises(BadInputError, match="states no CRS"):
        sentinel2.epsg_of(item)


@pytest.mark.parametrize(
    ("path", "index", "baseline", "offset", "source"),
    [
        (ES_2020, 0, (2, 14), 0.0, "raster:bands"),  # old baseline: no BOA offset
        (ES_2023, 0, (5, 9), -0.1, "raster:bands"),
        (ES_C1, 0, (5, 11), -0.1, "raster:bands"),
        (PC_2019, 0, (2, 12), 0.0, "baseline"),  # PC states no raster:bands at all
        (PC_2024, 0, (5, 11), -0.1, "baseline"),  # ...yet its DN carry the +1000 offset
        (PC_2024, 1, (5, 11), -0.1, "baseline"),
    ],
)
def test_scale_and_offset(path: Path, index: int, baseline: tuple[int, int], offset: float, source: str) -> None:
    item = load(path, index=index)
    assert sentinel2.processing_baseline(item) == baseline
    radiometry = sentinel2.scale_offset(item, "B04")
    assert radiometry.scale == pytest.approx(1e-4)
    assert radiometry.offset == pytest.approx(offset)
    assert radiometry.source == source
    if source == "baseline":
        assert sentinel2.scale_offset(item, "SCL") == sentinel2.ScaleOffset(1.0, 0.0, "baseline")


def test_baseline_from_product_uri_when_property_missing() -> None:
    item = load(PC_2019)
    del item.properties["s2:processing_baseline"]
    assert sentinel2.processing_baseline(item) == (2, 12)
    assert sentinel2.scale_offset(item, "B02").offset == 0.0


def test_platform_spellings_normalise() -> None:
    assert sentinel2.normalized_platform(load(ES_2023)) == "sentinel-2a"
    assert sentinel2.normalized_platform(load(PC_2019)) == "sentinel-2b"
    assert load(PC_2019).properties["platform"] == "Sentinel-2B"

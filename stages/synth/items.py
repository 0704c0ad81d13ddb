"""STAC items for synthetic acquisitions, shaped like one provider's items (Earth Search v1 or Planetary Computer).

Everything that differs by provider (asset keys, ids, platform spelling, extra properties, whether
`raster:bands` state scale and offset, the collection id) is read from the provider's profile in
`deep_lulc.shared.sources.providers`; `style` is a profile name (`synth --asset-style`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from shapely.geometry import Polygon, mapping

from deep_lulc.shared.geo.geometry import bounds_to_wgs84
from deep_lulc.shared.geo.grids import GeoBox, epsg_of
from deep_lulc.shared.io.cog import COG_MEDIA_TYPE
from deep_lulc.shared.io.stac import stamp_provenance
from deep_lulc.shared.sources import providers, sentinel2
from deep_lulc.stages.synth.landscape import MGRS_TILE, grid_bounds
from deep_lulc.stages.synth.scenes import Scene

PROCESSING_BASELINE = "05.10"
RELATIVE_ORBIT = "122"  # the orbit over the synthetic tile, in ids that state one

# How the synthetic tile fills each provider-specific property a profile lists in `extra_properties`.
EXTRA_PROPERTY_VALUES: dict[str, Any] = {
    "mgrs:utm_zone": int(MGRS_TILE[:2]),
    "mgrs:latitude_band": MGRS_TILE[2],
    "mgrs:grid_square": MGRS_TILE[3:],
    "grid:code": f"MGRS-{MGRS_TILE}",
    "earthsearch:boa_offset_applied": True,  # the DN carry the +1000 offset that raster:bands undo
}


def footprint_wgs84(grid: GeoBox, bounds: tuple[float, float, float, float] | None = None) -> Polygon:
    """The footprint of the grid (or of `bounds` on it) in EPSG:4326."""
    return bounds_to_wgs84(epsg_of(grid), bounds or grid_bounds(grid))


def item_id(scene: Scene, style: str) -> str:
    """The item id in the style of provider `style` (its profile's `item_id_template`)."""
    moment = scene.acquisition.datetime
    unit = "S2" + scene.acquisition.platform[-1].upper()  # 'sentinel-2a' -> 'S2A'
    return providers.get_provider(style).item_id_template.format(
        unit=unit,
        tile=MGRS_TILE,
        moment=moment,
        baseline=PROCESSING_BASELINE.replace(".", ""),
        orbit=RELATIVE_ORBIT,
    )


def build_item(
    scene: Scene, *, grid: GeoBox, style: str, files: dict[str, Path], derived_from: tuple[str, ...] = ()
) -> pystac.Item:
    """An item whose assets point at the COGs in `files` (band id -> path), shaped like provider `style`'s."""
    profile = providers.get_provider(style)
    states_raster_bands = profile.states_raster_bands
    acquisition = scene.acquisition
    footprint = footprint_wgs84(grid)
    platform = profile.platform(acquisition.platform)
    data_fraction = 1.0 - float(scene.nodata.mean())
    properties: dict[str, Any] = {
        "platform": platform,
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "s2:processing_baseline": PROCESSING_BASELINE,
        "s2:product_type": "S2MSI2A",
        "s2:nodata_pixel_percentage": round(100.0 * (1.0 - data_fraction), 4),
        "s2:mgrs_tile": MGRS_TILE,
        **providers.synthetic_marks(sky=acquisition.sky.value),
    }
    properties |= {name: EXTRA_PROPERTY_VALUES[name] for name in profile.extra_properties}
    item = pystac.Item(
        id=item_id(scene, style),
        geometry=mapping(footprint),
        bbox=list(footprint.bounds),
        datetime=acquisition.datetime,
        properties=properties,
    )
    EOExtension.ext(item, add_if_missing=True).cloud_cover = round(scene.cloud_cover_percent, 4)
    ProjectionExtension.ext(item, add_if_missing=True).code = f"EPSG:{epsg_of(grid)}"
    if states_raster_bands:
        RasterExtension.add_to(item)
    for band, path in files.items():
        resolution = 20 if band in ("B11", "B12", sentinel2.SCL_BAND) else 10
        band_grid = grid.zoom_out(resolution // 10)
        if band == sentinel2.SCL_BAND:
            title, roles = "Scene classification map (SCL)", ["data"]
            raster = RasterBand.create(nodata=0, data_type=DataType.UINT8, spatial_resolution=resolution)
        else:
            meta = sentinel2.BAND_BY_ID[band]
            title, roles = f"{meta.common_name.capitalize()} ({band}) - {resolution}m", ["data", "reflectance"]
            raster = RasterBand.create(
                nodata=0,
                data_type=DataType.UINT16,
                bits_per_sample=15,
                spatial_resolution=resolution,
                scale=sentinel2.REFLECTANCE_SCALE,
                offset=sentinel2.BOA_OFFSET,
            )
        asset = pystac.Asset(
            href=str(path), media_type=COG_MEDIA_TYPE, title=title, roles=roles, extra_fields={"gsd": resolution}
        )
        item.add_asset(profile.asset_key(band), asset)
        projection = ProjectionExtension.ext(asset)
        projection.shape = [band_grid.height, band_grid.width]
        projection.transform = list(band_grid.affine)[:6]
        if band != sentinel2.SCL_BAND:
            EOExtension.ext(asset).bands = [
                Band.create(
                    name=band,
                    common_name=meta.common_name,
                    center_wavelength=meta.center_wavelength_um,
                    full_width_half_max=meta.full_width_half_max_um,
                )
            ]
        if states_raster_bands:
            RasterExtension.ext(asset).bands = [raster]
    stamp_provenance(item, derived_from=derived_from)
    return item


def collection_for(items: list[pystac.Item], *, grid: GeoBox, style: str) -> pystac.Collection:
    """The collection of the synthetic items, under provider `style`'s (first) Sentinel-2 L2A collection id."""
    footprint = footprint_wgs84(grid)
    times = sorted(item.datetime for item in items if item.datetime is not None)
    collection = pystac.Collection(
        id=providers.get_provider(style).collections[0],
        title="Synthetic Sentinel-2 Level-2A",
        description=(
            "Deterministic synthetic Sentinel-2 L2A surface reflectance over a Slovenian valley, made by "
            f"`deep-lulc synth` ({style} asset style): uint16 DN, reflectance = DN * 0.0001 - 0.1."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([list(footprint.bounds)]),
            pystac.TemporalExtent([[times[0], times[-1]]]),
        ),
        license="CC0-1.0",
        keywords=["sentinel-2", "synthetic", "land cover"],
        providers=[pystac.Provider("deep-lulc", roles=[pystac.ProviderRole.PRODUCER])],
        summaries=pystac.Summaries(
            {
                "platform": sorted({str(item.properties["platform"]) for item in items}),
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [10, 20],
            }
        ),
    )
    return collection

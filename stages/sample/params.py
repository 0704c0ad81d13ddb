"""Parameters of `deep-lulc sample`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams


class SampleInputs(StageInputs):
    map: str = Field(
        description="The map to sample: a prediction or change catalog/item (predict, merge, change), or a "
        "single-band GeoTIFF of class values (its scheme from --classes)."
    )


class SampleParams(StageParams):
    """Draw a stratified random sample of a class or change map for reference labelling (Olofsson et al. 2014).

    The strata are the map's classes (a change map's: its transitions), so rare classes and rare changes get
    enough points to measure them. Allocation: every stratum gets --min-per-stratum points (all of its pixels
    if it has fewer), and the rest of --size goes to the strata in proportion to their area. Why: proportional
    allocation alone leaves a rare class a handful of points and its area and user's accuracy unusable; equal
    allocation wastes points on the large classes that set overall accuracy; the floor plus proportional rest
    is the compromise Olofsson et al. (2014, section 5.1.1) recommend. When the floors exceed --size, the sample
    is the floors. Points are pixel centres; the seed makes the draw reproducible.

    Writes sample.gpkg (the map's CRS, for labelling in QGIS) and sample.geojson (WGS84) with an empty
    `reference` column (a change map's sample also has `reference_from`/`reference_to`), the map's class at each
    point, the stratum, its pixel count and the inclusion probability, plus a STAC item. Label the points, then
    run `deep-lulc area`.
    """

    size: int = Field(500, ge=2, le=1_000_000, description="Points to draw in all (raised to fit the floors).")
    min_per_stratum: int = Field(
        50, ge=2, le=100_000, description="Points every stratum gets at least (all of a stratum that has fewer)."
    )
    classes: str | None = Field(
        None,
        description="Class scheme file (YAML/JSON) of a GeoTIFF --map (default: the default scheme); for a STAC "
        "map it must match the scheme its item declares.",
    )
    seed: int = Field(0, ge=0, description="Seed of the draw: the same map and seed give the same points.")

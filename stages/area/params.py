"""Parameters of `deep-lulc area`."""

from __future__ import annotations

from pydantic import Field

from deep_lulc.shared.stage.contract import StageInputs, StageParams


class AreaInputs(StageInputs):
    map: str = Field(
        description="The map the sample was drawn from: a prediction or change catalog/item, or a single-band "
        "GeoTIFF of class values (its scheme from --classes)."
    )
    sample: str = Field(
        description="The labelled sample: sample.gpkg or sample.geojson of `deep-lulc sample`, its `reference` "
        "column filled in (a change map's: the transition code, or `reference_from` and `reference_to`)."
    )


class AreaParams(StageParams):
    """Error-adjusted area of every class (or transition) with 95 % confidence intervals, from a labelled sample.

    Uses the stratified estimators of Olofsson et al. (2014), the strata being the map's classes (a change
    map's transitions), which `area` reads from the map at each point itself. Writes area.json, area.csv, a
    report.html beside the pixel-counted areas and a STAC item: the error matrix in estimated area proportions;
    overall, user's and producer's accuracy with 95 % intervals; estimated area +- 95 % interval in hectares.
    Points left unlabelled are skipped (and counted); every stratum needs at least two labelled points.
    """

    classes: str | None = Field(
        None,
        description="Class scheme file (YAML/JSON) of a GeoTIFF --map (default: the default scheme); for a STAC "
        "map it must match the scheme its item declares.",
    )

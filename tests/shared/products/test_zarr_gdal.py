"""The Zarr stores as Debian 12's `gdalinfo` (GDAL 3.6, under the QGIS of that release) sees them: with their CRS,
and with the CRS axes on the right array dimensions, so that the corners land where the grid is.

GDAL before 3.9 reads no CF grid mapping, and GDAL 3.6 pairs its own `_CRS` attribute with the wrong dimensions
(see `zarr_store.write_gdal_sidecar`), so this runs the real Debian tool rather than rasterio's newer GDAL. A
`services` test (tests/conftest.py): `make services` installs gdal-bin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pyproj import Transformer

from ...conftest import REQUIRE_SHARED
from .test_products_zarr import GRID, cube_catalog, store_path, write_tiny_features

EPSG = 32633  # GRID's
# A slice of each array: GDAL's classic 2-D view of a (time, band, y, x) array needs the leading indices.
SLICES = {"cube": ("/reflectance:0:1", "/scl:1"), "features": ("/features:1:0", "/valid_count")}


def gdalinfo() -> str:
    found = shutil.which("gdalinfo")
    if found is None:
        message = "Debian's gdalinfo is not installed: `make services` installs gdal-bin"
        if os.environ.get(REQUIRE_SHARED) == "1":  # CI never skips a check for want of a tool
            pytest.fail(message)
        pytest.skip(message)
    return found


def describe(store: Path, array: str) -> dict[str, Any]:
    done = subprocess.run(
        [gdalinfo(), "-json", f'ZARR:"{store}":{array}'], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    described: dict[str, Any] = json.loads(done.stdout)
    return described


@pytest.mark.parametrize("product", ["cube", "features"])
def test_debian_gdalinfo_reports_the_crs_and_places_the_grid(tmp_path: Path, product: str) -> None:
    if product == "cube":
        store = store_path(cube_catalog(tmp_path), "cube.zarr")
    else:
        store = store_path(write_tiny_features(tmp_path)[0])
    minx, miny, maxx, maxy = GRID.boundingbox
    lons, lats = Transformer.from_crs(EPSG, 4326, always_xy=True).transform(
        [minx, minx, maxx, maxx], [miny, maxy, miny, maxy]
    )
    for array in SLICES[product]:
        info = describe(store, array)
        system = info.get("coordinateSystem", {})
        assert f'ID["EPSG",{EPSG}]]' in system.get("wkt", ""), f"{array}: no CRS in {sorted(info)}"
        # CRS axis 1 (easting) on the GeoTransform's x, axis 2 (northing) on its y: anything else misplaces the map
        assert system["dataAxisToSRSAxisMapping"] == [1, 2], array
        assert info["geoTransform"] == list(GRID.affine.to_gdal()), array
        corners = info["cornerCoordinates"]
        assert corners["upperLeft"] == pytest.approx([minx, maxy]), array
        # Longitudes and latitudes only follow from the CRS with the right axis mapping (GDAL 3.6 with `_CRS`
        # put this grid, near 15.3 E 46.2 N, at the equator).
        ring = info["wgs84Extent"]["coordinates"][0]
        assert min(point[0] for point in ring) == pytest.approx(min(lons), abs=1e-4), array
        assert max(point[1] for point in ring) == pytest.approx(max(lats), abs=1e-4), array


def test_gdalinfo_text_names_the_coordinate_system(tmp_path: Path) -> None:
    """What a person reads: the `Coordinate System is:` block names the UTM zone."""
    store = store_path(cube_catalog(tmp_path), "cube.zarr")
    done = subprocess.run(
        [gdalinfo(), f'ZARR:"{store}":/scl:0'], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Coordinate System is:" in lines, done.stdout
    assert lines[lines.index("Coordinate System is:") + 1] == 'PROJCRS["WGS 84 / UTM zone 33N",'

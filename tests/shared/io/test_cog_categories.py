"""Class and change COGs name their codes for GDAL (category names and a thematic attribute table), stay valid
COGs with unchanged pixels, and their items mark class 0 as nodata.

GDAL itself reads the names back: through its C API in the very library rasterio loaded (rasterio exposes no
category API), and, where the `gdalinfo` program is installed, through `gdalinfo -json` as a second build.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from deep_lulc.shared.geo.grids import geobox
from deep_lulc.shared.io.cog import BLOCK, CogWriter, sidecar_of, write_cog
from deep_lulc.shared.lulc.classes import SLOVENIA, ClassScheme, LulcClass
from deep_lulc.shared.lulc.transitions import TransitionCoding
from deep_lulc.shared.products.change import change_writer
from deep_lulc.shared.products.class_map import class_map_writer

from ...class_map_data import write_class_map_catalog

# Wider and taller than two blocks, ragged edges: a real tiled COG with overviews, written in windows.
GRID = geobox(32633, Affine(10.0, 0.0, 520_000.0, 0.0, -10.0, 5_117_000.0), 2 * BLOCK + 41, 2 * BLOCK + 13)


@dataclass(frozen=True)
class GdalBand:
    """What GDAL reports for band 1 of a raster."""

    categories: list[str]
    table: list[dict[str, str]]  # raster attribute table rows, column name -> value as GDAL formats it


def _libgdal() -> ctypes.CDLL:
    """The GDAL library rasterio has loaded (the same one that wrote the files)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and Path(fields[-1]).name.startswith("libgdal"):
            lib = ctypes.CDLL(fields[-1])
            break
    else:  # pragma: no cover - rasterio links GDAL, so it is mapped once rasterio is imported
        pytest.fail("no libgdal mapped into this process")
    lib.GDALAllRegister()
    lib.GDALOpen.restype, lib.GDALOpen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]
    lib.GDALClose.argtypes = [ctypes.c_void_p]
    lib.GDALGetRasterBand.restype, lib.GDALGetRasterBand.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]
    lib.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    lib.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    lib.GDALGetDefaultRAT.restype, lib.GDALGetDefaultRAT.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    for name in ("GDALRATGetRowCount", "GDALRATGetColumnCount"):
        getattr(lib, name).restype, getattr(lib, name).argtypes = ctypes.c_int, [ctypes.c_void_p]
    lib.GDALRATGetNameOfCol.restype, lib.GDALRATGetNameOfCol.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int]
    lib.GDALRATGetValueAsString.restype = ctypes.c_char_p
    lib.GDALRATGetValueAsString.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return lib


def gdal_band(path: Path) -> GdalBand:
    """Category names and attribute table of band 1, as GDAL's C API returns them for `path`."""
    lib = _libgdal()
    dataset = lib.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        band = lib.GDALGetRasterBand(dataset, 1)
        # The table first: GDAL 3.10's GeoTIFF band loads its sidecar lazily, on the first metadata, colour
        # table or RAT call, and GetCategoryNames alone does not trigger it (gdalinfo and QGIS ask for those first).
        rat = lib.GDALGetDefaultRAT(band)
        pointer = lib.GDALGetRasterCategoryNames(band)
        categories: list[str] = []
        while pointer and pointer[len(categories)] is not None:
            categories.append(pointer[len(categories)].decode())
        table: list[dict[str, str]] = []
        if rat:
            columns = [lib.GDALRATGetNameOfCol(rat, i).decode() for i in range(lib.GDALRATGetColumnCount(rat))]
            for row in range(lib.GDALRATGetRowCount(rat)):
                values = [lib.GDALRATGetValueAsString(rat, row, i).decode() for i in range(len(columns))]
                table.append(dict(zip(columns, values, strict=True)))
        return GdalBand(categories=categories, table=table)
    finally:
        lib.GDALClose(dataset)


def gdalinfo_categories(path: Path) -> list[str] | None:
    """`gdalinfo -json`'s category names for band 1, or None where the program is not installed."""
    program = shutil.which("gdalinfo")
    if program is None:
        return None
    report = json.loads(subprocess.run([program, "-json", str(path)], capture_output=True, check=True).stdout)
    return list(report["bands"][0].get("categories", []))


def patches(seed: int, values: np.ndarray, dtype: str) -> np.ndarray:
    """Codes in 9-pixel squares on GRID, nodata holes included."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice(values, size=(-(-GRID.height // 9), -(-GRID.width // 9)))
    return np.kron(coarse, np.ones((9, 9), dtype=np.int64))[: GRID.height, : GRID.width].astype(dtype)


def write_in_windows(writer: CogWriter, values: np.ndarray, *, block: int = 200) -> Path:
    for row in range(0, values.shape[0], block):
        for col in range(0, values.shape[1], block):
            writer.write(values[row : row + block, col : col + block], row=row, col=col)
    return writer.finish()


@pytest.fixture
def class_cog(tmp_path: Path) -> tuple[Path, np.ndarray]:
    values = patches(5, np.array(SLOVENIA.values), "uint8")
    return write_in_windows(class_map_writer(tmp_path / "classes.tif", GRID, SLOVENIA), values), values


def test_class_cog_names_every_class_for_gdal(class_cog: tuple[Path, np.ndarray]) -> None:
    path, _ = class_cog
    band = gdal_band(path)
    assert band.categories == [c.name for c in SLOVENIA.classes]
    assert [(row["Value"], row["Class"]) for row in band.table] == [(str(c.value), c.name) for c in SLOVENIA.classes]
    forest = next(row for row in band.table if row["Class"] == "Forest")
    assert (forest["Red"], forest["Green"], forest["Blue"], forest["Alpha"]) == ("5", "73", "7", "255")
    assert band.table[0]["Alpha"] == "0", "nodata is transparent in the table as in the colour table"
    from_gdalinfo = gdalinfo_categories(path)
    assert from_gdalinfo is None or from_gdalinfo == band.categories


def test_class_cog_stays_a_valid_cog_with_unchanged_pixels(class_cog: tuple[Path, np.ndarray]) -> None:
    path, values = class_cog
    valid, errors, warnings = cog_validate(str(path))
    assert (valid, errors, warnings) == (True, [], [])
    with rasterio.open(path) as dataset:
        assert np.array_equal(dataset.read(1), values)
        assert dataset.overviews(1)
        assert dataset.colormap(1)[2][:3] == (5, 73, 7)
        assert dataset.nodata == SLOVENIA.nodata
    assert sidecar_of(path).is_file(), "GDAL keeps GeoTIFF category names in the PAM sidecar"
    assert sorted(p.name for p in path.parent.iterdir()) == ["classes.tif", "classes.tif.aux.xml"], "no scratch left"


def test_names_leave_the_cog_bytes_as_they_were(class_cog: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """The names live beside the COG: the COG itself is byte for byte what the same writer makes without them."""
    path, values = class_cog
    plain = CogWriter(
        tmp_path / "plain" / "classes.tif",
        GRID,
        nodata=SLOVENIA.nodata,
        colormap={c.value: (*c.rgb, 0 if c.value == 0 else 255) for c in SLOVENIA.classes},
    )
    plain_path = write_in_windows(plain, values)
    assert plain_path.read_bytes() == path.read_bytes()
    assert not sidecar_of(plain_path).exists()
    assert gdal_band(plain_path).categories == []


def test_rewriting_without_names_drops_the_old_sidecar(class_cog: tuple[Path, np.ndarray]) -> None:
    path, values = class_cog
    write_in_windows(CogWriter(path, GRID, nodata=0), values)
    assert not sidecar_of(path).exists()
    assert gdal_band(path).categories == []


@pytest.mark.parametrize("n_classes", [10, 16], ids=["uint8-codes", "uint16-codes"])
def test_change_cog_names_every_transition(tmp_path: Path, n_classes: int) -> None:
    scheme = ClassScheme(
        classes=(
            LulcClass(0, "NoData", "none", "#ffffff"),
            *(LulcClass(v, f"C{v}", f"class {v}", f"#{v * 9:02x}3050") for v in range(1, n_classes + 1)),
        )
    )
    coding = TransitionCoding(scheme)
    codes = patches(8, np.arange(coding.codes), coding.dtype)
    path = write_in_windows(change_writer(tmp_path, GRID, coding), codes)
    assert cog_validate(str(path))[0]
    with rasterio.open(path) as dataset:
        assert dataset.dtypes[0] == coding.dtype
        assert np.array_equal(dataset.read(1), codes)
    names = gdal_band(path).categories
    assert len(names) == coding.codes
    assert names[0] == "NoData"
    assert names[coding.code(0, 1)] == "C1_to_C2"
    assert names[coding.code(n_classes - 1, 0)] == f"C{n_classes}_to_C1"
    assert names == [names[0], *(coding.name(code) for code in range(1, coding.codes))]
    from_gdalinfo = gdalinfo_categories(path)
    assert from_gdalinfo is None or from_gdalinfo == names


def test_whole_rasters_and_small_chips_get_names_too(tmp_path: Path) -> None:
    """`write_cog` stages pixels in memory: names still reach the sidecar of a plain (chip-sized) GeoTIFF."""
    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    path = write_cog(
        tmp_path / "label.tif",
        labels,
        transform=GRID.affine,
        epsg=32633,
        nodata=0,
        categories={0: "NoData", 1: "Crop", 2: "Tree"},
    )
    assert gdal_band(path).categories == ["NoData", "Crop", "Tree"]
    with rasterio.open(path) as dataset:
        assert np.array_equal(dataset.read(1), labels)
    assert not list(tmp_path.glob("*.scratch.*"))


def test_names_need_a_single_integer_band(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one-band integer raster"):
        CogWriter(tmp_path / "x.tif", GRID, nodata=0, dtype="float32", categories={1: "a"})
    with pytest.raises(ValueError, match="one-band integer raster"):
        CogWriter(tmp_path / "x.tif", GRID, nodata=0, count=2, categories={1: "a"})


def test_item_marks_class_zero_nodata_and_lists_the_sidecar(tmp_path: Path) -> None:
    catalog = write_class_map_catalog(tmp_path / "map", patches(2, np.array(SLOVENIA.values), "uint8"), grid=GRID)
    item = next(iter(pystac.read_file(catalog).get_items(recursive=True)))  # type: ignore[attr-defined]
    item.validate()  # offline schemas (conftest): classification v2.0.0 knows `nodata`
    classes = item.assets["classes"].extra_fields["classification:classes"]
    assert [c["value"] for c in classes if c.get("nodata")] == [0]
    assert all("nodata" not in c for c in classes if c["value"] != 0)
    aux = item.assets["classes_aux"]
    sidecar = Path(aux.get_absolute_href() or "")
    assert sidecar == sidecar_of(Path(item.assets["classes"].get_absolute_href() or ""))
    assert aux.extra_fields["file:size"] == sidecar.stat().st_size
    assert aux.roles == ["metadata"]
    assert gdal_band(sidecar.with_name("classes.tif")).categories[3] == "Grassland"


def test_a_predicted_map_names_its_classes(tiny_model: str, tiny_features: str, tmp_path: Path) -> None:
    """`deep-lulc predict`'s own map: its sidecar is published with it and names the model's classes."""
    from deep_lulc.stages.predict import stage as predict
    from deep_lulc.stages.predict.params import PredictParams

    params = PredictParams(tile_size=32, overlap=8, batch_size=4, device="cpu")
    catalog = predict.run(inputs={"model": tiny_model, "features": tiny_features}, output=str(tmp_path), params=params)
    item = next(iter(pystac.read_file(catalog.catalog).get_items(recursive=True)))  # type: ignore[attr-defined]
    path = Path(item.assets["classes"].get_absolute_href() or "")
    assert cog_validate(str(path))[0]
    assert gdal_band(path).categories == [c.name for c in SLOVENIA.classes]
    assert Path(item.assets["classes_aux"].get_absolute_href() or "") == sidecar_of(path)
    assert not list(tmp_path.rglob("*.scratch.*")), "no scratch raster or VRT is published"

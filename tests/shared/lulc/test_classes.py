"""The class scheme: the seed's Slovenia default, replaceable by a file, validated with actionable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.lulc.classes import SLOVENIA, load_class_scheme


def test_default_is_the_seed_scheme() -> None:
    names = [c.name for c in SLOVENIA.classes]
    assert names == [
        "NoData",
        "CultivatedLand",
        "Forest",
        "Grassland",
        "Shrubland",
        "Water",
        "Wetlands",
        "Tundra",
        "ArtificialSurface",
        "Bareland",
        "SnowAndIce",
    ]
    assert SLOVENIA.values == list(range(11))
    assert SLOVENIA.nodata == 0
    assert 0 not in [c.value for c in SLOVENIA.labelled]


def test_classification_fields_satisfy_both_schema_versions() -> None:
    for entry in SLOVENIA.to_classification():
        assert {"value", "name", "description", "color_hint"} <= set(entry)
        assert len(entry["color_hint"]) == 6
        assert not entry["color_hint"].startswith("#")


def test_scheme_from_yaml(tmp_path: Path) -> None:
    file = tmp_path / "classes.yaml"
    file.write_text(
        "nodata: 0\nclasses:\n"
        "  - {value: 0, name: none, color: '#000000'}\n"
        "  - {value: 1, name: crop, description: Crops, color: '#ffff00'}\n"
        "  - {value: 2, name: tree, description: Trees, color: '#00ff00'}\n"
    )
    scheme = load_class_scheme(file)
    assert [c.name for c in scheme.labelled] == ["crop", "tree"]
    assert scheme.by_name("TREE").value == 2
    assert scheme.classes[0].description == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("classes: []\nnodata: 5", "the class scheme lists no classes"),
        ("classes:\n  - {value: 0, name: a}\n  - {value: 0, name: b}", "duplicate values"),
        ("classes:\n  - {value: 0, name: 'no data'}", "characters STAC classification forbids"),
        ("classes:\n  - {value: 300, name: big}\nnodata: 300", "outside 0..254"),
        ("nothing: here", "no 'classes' list"),
        ("classes: [", "not valid YAML"),
    ],
)
def test_bad_scheme_files(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "classes.yaml"
    file.write_text(text)
    with pytest.raises(BadInputError, match=message):
        load_class_scheme(file)


def test_missing_scheme_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="class scheme file not found"):
        load_class_scheme(tmp_path / "absent.yaml")


def test_unknown_value_names_the_fix() -> None:
    with pytest.raises(BadInputError, match=r"unknown class value 42.*--class-map"):
        SLOVENIA.by_value(42)

"""The architecture's rules, checked on the source (docs/architecture.md draws them): stages are independent,
the layers of shared/ import only downwards, and only product modules spell product fields."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from ..conftest import PROJECT_ROOT


def test_stages_import_only_shared_never_another_stage() -> None:
    """Independent containers: a stage reaches other stages' artifacts through `deep_lulc.shared` only.
    The demo (which chains every stage) and the CLI entry point (which lists them) are the exceptions."""
    stages_dir = Path(__file__).resolve().parents[2] / "stages"
    crossings = []
    for module in sorted(stages_dir.glob("*/*.py")):
        stage = module.parent.name
        if stage == "demo":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[:2] == ["deep_lulc", "stages"] and len(parts) > 2 and parts[2] != stage:
                    crossings.append(f"{module.relative_to(stages_dir.parent)} imports {name}")
    assert not crossings, crossings


# Which layers of shared/ each layer may import (the root modules `errors` and `version` are open to all).
# docs/architecture.md draws the same table; change both together.
LAYERS: dict[str, set[str]] = {
    "geo": set(),
    "io": {"geo"},
    "stage": {"io", "geo"},
    "lulc": {"io", "geo"},
    "models": {"io", "geo"},
    "sources": {"stage", "io", "geo"},
    "products": {"sources", "models", "lulc", "stage", "io", "geo"},
}
ROOT_MODULES = {"errors", "version"}
# shared/root/ is the `deep_lulc` package itself (pyproject's package-dir), not a layer: see the test below.
PACKAGE_ROOT = "root"


def _deep_lulc_imports(module: Path) -> list[list[str]]:
    found = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [[*node.module.split("."), alias.name] for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [alias.name.split(".") for alias in node.names]
    return [parts for parts in found if parts[0] == "deep_lulc"]


def test_shared_layers_import_only_downwards() -> None:
    """A layer that reaches up (a network opening a features store, a label reader needing the AOI parser)
    is how a grab-bag grows back; every module of shared/ is checked, lazy imports inside functions too."""
    shared_dir = PROJECT_ROOT / "shared"
    assert {p.name for p in shared_dir.iterdir() if (p / "__init__.py").is_file()} == set(LAYERS) | {PACKAGE_ROOT}
    assert {p.stem for p in shared_dir.glob("*.py")} == ROOT_MODULES | {"__init__"}
    crossings = []
    for module in sorted(shared_dir.rglob("*.py")):
        if module.parent.name == PACKAGE_ROOT:
            continue
        relative = module.relative_to(shared_dir).parts
        layer = relative[0] if len(relative) > 1 else None
        for parts in _deep_lulc_imports(module):
            assert parts[1] == "shared", f"{module} imports {'.'.join(parts)}: shared/ never imports a stage"
            target = parts[2] if len(parts) > 2 else None
            if target in ROOT_MODULES or target == layer:
                continue
            allowed = LAYERS[layer] if layer else set()
            if target not in allowed:
                crossings.append(f"{module.relative_to(PROJECT_ROOT)} ({layer or 'root'}) imports {'.'.join(parts)}")
    assert not crossings, crossings


# A string literal that starts with a product or STAC-extension field name: `"deep-lulc:grid"`, `'proj:code'`.
FIELD_LITERAL = re.compile(r"""["'](deep-lulc|proj|eo|raster|file|mlm|classification|processing|sat|view):[a-z]""")


def test_stages_spell_no_product_or_extension_field() -> None:
    """Each artifact's fields are declared, written and read in its one product module (shared/products,
    shared/sources/scene_list.py); a stage that spells `"deep-lulc:tile"` couples itself to another
    stage's writer behind the product's back."""
    hits = [
        f"{module.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for module in sorted((PROJECT_ROOT / "stages").rglob("*.py"))
        for number, line in enumerate(module.read_text().splitlines(), 1)
        if FIELD_LITERAL.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_the_package_root_only_says_its_version() -> None:
    """`import deep_lulc` must stay cheap and cycle-free: the root package re-exports the version and nothing
    else, so that a notebook's `deep_lulc.__version__` loads no torch, GDAL or stage."""
    root = PROJECT_ROOT / "shared" / PACKAGE_ROOT
    assert [p.name for p in root.iterdir() if p.suffix == ".py"] == ["__init__.py"]
    assert _deep_lulc_imports(root / "__init__.py") == [["deep_lulc", "shared", "version", "__version__"]]
    import deep_lulc
    from deep_lulc.shared import version

    assert deep_lulc.__version__ == version.__version__

"""The README and docs/ hold together: generated parts match the product (docs/cli.md is the commands' real
`--help`, the figure blocks are what their recorded runs render to), the README stays short, and every
relative link resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..cli_reference import current, render
from ..conftest import PROJECT_ROOT

README_LIMIT = 20 * 1024  # bytes: the README orients; references live in docs/
DOCUMENTS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]


def test_docs_cli_md_is_the_real_help() -> None:
    assert current() == render(), (
        "docs/cli.md's generated --help block differs from the commands' --help; "
        "run: .venv/bin/python tests/cli_reference.py --write"
    )


def test_readme_is_short() -> None:
    size = len((PROJECT_ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes, over {README_LIMIT}: move reference material to docs/"


def _prose(text: str) -> str:
    """`text` without fenced code blocks and inline code, where brackets and parentheses are not links."""
    text = re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"(`+).+?\1", "", text, flags=re.S)


def _anchors(document: Path) -> set[str]:
    """The heading anchors GitHub gives `document`: lower case, punctuation dropped, spaces as hyphens,
    repeated headings numbered."""
    anchors: set[str] = set()
    fenced = re.sub(r"^```.*?^```[^\n]*$", "", document.read_text(encoding="utf-8"), flags=re.M | re.S)
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", fenced, flags=re.M):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in anchors:
            n += 1
            anchor = f"{slug}-{n}"
        anchors.add(anchor)
    return anchors


def _relative_links(document: Path) -> list[str]:
    prose = _prose(document.read_text(encoding="utf-8"))
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    targets += re.findall(r"\b(?:src|href)=\"([^\"]+)\"", prose)
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I)]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(PROJECT_ROOT).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    """Every relative link in README.md and docs/*.md names a file that exists, and a `#anchor` into a
    markdown file names one of its headings."""
    broken = []
    for target in _relative_links(document):
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists():
            broken.append(f"{target} (nothing at {path})")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor} in {resolved.relative_to(PROJECT_ROOT)})")
    assert not broken, f"{document.relative_to(PROJECT_ROOT)}: broken links {broken}"


def test_the_link_check_sees_links() -> None:
    """The checks above are not vacuous: the README links docs/, and a code span's brackets are no link."""
    assert "docs/cli.md" in _relative_links(PROJECT_ROOT / "README.md")
    assert "docs/images/demo-map-2024.png" in _relative_links(PROJECT_ROOT / "README.md")
    assert _prose("a `x[i](j)` b") == "a  b"
    assert "every-commands---help" in _anchors(PROJECT_ROOT / "docs" / "cli.md")


def test_readme_demo_figures_come_from_the_quality_script() -> None:
    """The demo figures in the README are `benchmarks/quality.py`'s rendering of its recorded run, not typed."""
    import json
    import re
    from pathlib import Path

    from benchmarks.figures import README
    from benchmarks.quality import END, START, readme_block

    recorded = Path(__file__).resolve().parents[2] / "docs" / "demo-figures.json"
    block = re.search(re.escape(START) + ".*?" + re.escape(END), README.read_text(), re.DOTALL)
    assert block is not None, "README.md lost its demo-figures block"
    assert block.group(0) == readme_block(json.loads(recorded.read_text())), (
        "run: .venv/bin/python -m benchmarks.quality --runs 2 --json docs/demo-figures.json --readme"
    )


def test_readme_real_figures_come_from_the_real_benchmark() -> None:
    """The real-imagery table in the README is `benchmarks/real.py`'s rendering of its recorded run."""
    import json
    import re
    from pathlib import Path

    from benchmarks.figures import README
    from benchmarks.real import END, START, readme_block

    recorded = Path(__file__).resolve().parents[2] / "docs" / "real-figures.json"
    block = re.search(re.escape(START) + ".*?" + re.escape(END), README.read_text(), re.DOTALL)
    assert block is not None, "README.md lost its real-figures block"
    assert block.group(0) == readme_block(json.loads(recorded.read_text())), (
        "run: .venv/bin/python -m benchmarks.real --json docs/real-figures.json --readme"
    )


def test_area_figures_come_from_the_area_benchmark() -> None:
    """The figures of docs/area-estimation.md are `benchmarks/area_estimation.py`'s rendering of its run."""
    import json
    import re

    from benchmarks.area_estimation import DOC, END, START, doc_block

    recorded = PROJECT_ROOT / "docs" / "area-figures.json"
    block = re.search(re.escape(START) + ".*?" + re.escape(END), DOC.read_text(), re.DOTALL)
    assert block is not None, "docs/area-estimation.md lost its figures block"
    assert block.group(0) == doc_block(json.loads(recorded.read_text())), (
        "run: .venv/bin/python -m benchmarks.area_estimation --json docs/area-figures.json --doc"
    )


def test_change_figures_come_from_the_consistency_benchmark() -> None:
    """The flicker table of docs/outputs.md is `benchmarks/change_consistency.py`'s rendering of its run."""
    import json
    import re

    from benchmarks.change_consistency import DOC, END, START, doc_block

    recorded = PROJECT_ROOT / "docs" / "change-figures.json"
    block = re.search(re.escape(START) + ".*?" + re.escape(END), DOC.read_text(), re.DOTALL)
    assert block is not None, "docs/outputs.md lost its change-figures block"
    assert block.group(0) == doc_block(json.loads(recorded.read_text())), (
        "run: .venv/bin/python -m benchmarks.change_consistency --json docs/change-figures.json --doc"
    )

"""The README's generated parts match the product: the CLI reference is the commands' real `--help`."""

from __future__ import annotations

from ..cli_reference import current, render


def test_readme_cli_reference_is_the_real_help() -> None:
    assert current() == render(), "run: .venv/bin/python tests/cli_reference.py --write"


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

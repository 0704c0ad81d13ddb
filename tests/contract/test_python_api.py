"""docs/python.md is a notebook a user copies from: every `python` block runs here, in order, in one namespace,
so a renamed parameter, asset key or module breaks this test before it breaks a user's notebook."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUIDE = PROJECT_ROOT / "docs" / "python.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_the_guide_has_blocks_to_run() -> None:
    """A fence typo (```py, an unclosed block) would leave the test below running nothing."""
    text = GUIDE.read_text()
    assert len(python_blocks(text)) == text.count("```python") >= 6
    assert text.count("```") == 2 * text.count("```python")


@pytest.mark.slow
def test_every_block_of_the_python_guide_runs(tmp_path: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__guide__"}
    printed = io.StringIO()
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for number, block in enumerate(python_blocks(GUIDE.read_text()), start=1):
            with contextlib.redirect_stdout(printed):
                try:
                    exec(compile(block, f"docs/python.md block {number}", "exec"), namespace)
                except Exception as error:
                    raise AssertionError(f"docs/python.md block {number} failed: {error!r}\n{block}") from error
    finally:
        os.chdir(cwd)
    output = printed.getvalue()
    import deep_lulc

    assert output.startswith(deep_lulc.__version__ + "\n")
    assert "refused: ('resolutoin',)" in output
    assert re.search(r"^features-\S+ \{'time': 23, 'channel': 9, 'y': \d+, 'x': \d+\}$", output, re.MULTILINE), output
    # what the chain wrote is where the guide says, and the error block really raised
    assert (tmp_path / "deep-lulc-notebook" / "map" / "catalog.json").is_file()
    assert re.search(r"^3 NothingToDoError no sentinel-2-l2a scenes", output, re.MULTILINE), output[-2000:]
    assert not (tmp_path / "deep-lulc-notebook" / "empty-cube").exists()

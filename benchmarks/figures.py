"""Where generated figures go: a JSON record and the README block rendered from it, between two markers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_block(block: str, start: str, end: str, readme: Path = README) -> None:
    """Swap the README's text from `start` to `end` (markers included, as `block` holds them) for `block`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{readme} has no {start} ... {end} block")
    readme.write_text(pattern.sub(lambda _: block, text))


def publish(
    data: dict[str, Any], *, json_path: Path | None, block: str | None, start: str, end: str, document: Path = README
) -> None:
    """Keep the figures as JSON (`--json`) and rewrite the block in `document` (the README) from them."""
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(data, indent=2) + "\n")
    if block is not None:
        replace_block(block, start, end, document)

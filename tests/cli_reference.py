"""The CLI reference in docs/cli.md, rendered from the real `--help` of every command.

Regenerate it with `.venv/bin/python tests/cli_reference.py --write`; `tests/contract/test_readme.py` fails
when docs/cli.md and the commands drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from deep_lulc.stages.cli import app

DOCS_CLI = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
COMMANDS = (
    "synth",
    "search",
    "cube",
    "features",
    "chips",
    "train",
    "plan-tiles",
    "predict",
    "merge",
    "change",
    "evaluate",
    "run",
    "demo",
)


def render() -> str:
    runner = CliRunner()
    sections = []
    for command in COMMANDS:
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"})
        if result.exit_code != 0:
            raise RuntimeError(f"deep-lulc {command} --help failed: {result.output}")
        text = "\n".join(line.rstrip() for line in result.output.splitlines()).strip("\n")
        sections.append(f"### `deep-lulc {command} --help`\n\n```text\n{text}\n```")
    return "\n\n".join(sections)


def current() -> str:
    match = re.search(re.escape(START) + r"\n(.*)\n" + re.escape(END), DOCS_CLI.read_text(encoding="utf-8"), re.S)
    return match.group(1) if match else ""


def write() -> None:
    text = DOCS_CLI.read_text(encoding="utf-8")
    block = f"{START}\n{render()}\n{END}"
    if START not in text:
        raise SystemExit(f"{DOCS_CLI} has no {START} marker")
    text = re.sub(re.escape(START) + r".*" + re.escape(END), lambda _: block, text, flags=re.S)
    DOCS_CLI.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(render())

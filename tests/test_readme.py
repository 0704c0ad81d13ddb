"""The README's generated parts match the product: the CLI reference is the commands' real `--help`."""

from __future__ import annotations

from .cli_reference import current, render


def test_readme_cli_reference_is_the_real_help() -> None:
    assert current() == render(), "run: .venv/bin/python tests/cli_reference.py --write"

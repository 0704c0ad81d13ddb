"""Progress bars for long loops: on stderr, and only when stderr is a terminal (logs and pods stay clean)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, what: str, unit: str = "it") -> Iterator[T]:
    bar: Iterator[T] = tqdm(
        items, total=total, desc=what, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True
    )
    return bar


def progress_bar(*, total: int, what: str, unit: str = "it") -> Any:
    """A bar advanced by hand (`.update(n)`, `.close()`) for loops that are not plain iterations."""
    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)

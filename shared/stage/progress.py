"""Progress bars for long loops: on stderr, and only when stderr is a terminal (logs and pods stay clean).

A pod's log is a file: a bar redrawn with carriage returns becomes one ever-growing line per loop there, so
off a terminal loops report through logging instead (training: one line per epoch).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def interactive() -> bool:
    """Whether progress may be drawn: stderr is a terminal (not a pipe, a file or a pod's log)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr: nobody is watching
        return False


def progress(items: Iterable[T], *, total: int | None = None, what: str, unit: str = "it") -> Iterator[T]:
    bar: Iterator[T] = tqdm(
        items,
        total=total,
        desc=what,
        unit=unit,
        file=sys.stderr,
        disable=not interactive(),
        leave=False,
        dynamic_ncols=True,
    )
    return bar


def progress_bar(*, total: int, what: str, unit: str = "it") -> Any:
    """A bar advanced by hand (`.update(n)`, `.close()`) for loops that are not plain iterations."""
    return tqdm(
        total=total, desc=what, unit=unit, file=sys.stderr, disable=not interactive(), leave=False, dynamic_ncols=True
    )

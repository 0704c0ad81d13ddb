"""Progress bars for long loops: on stderr, and only when stderr is a terminal (logs and pods stay clean).

A pod's log is a file: a bar redrawn with carriage returns becomes one ever-growing line per loop there, so
off a terminal loops report through logging instead (training: one line per epoch).
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from dask.callbacks import Callback
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


@contextlib.contextmanager
def dask_progress(*, layer: str, what: str, unit: str) -> Iterator[None]:
    """A bar over the dask computations run inside the block (local schedulers: threads, processes, sync),
    advanced by one each time every task of `layer` with the same first block index has run.

    The steps are the layer's first dimension: `layer="store-map"` (dask's store tasks, which `to_zarr` runs)
    over arrays chunked one time step a chunk counts written frames. dask's own `ProgressBar` counts every task
    of the graph and prints wherever stdout goes; this one counts what a person waits for, on a terminal only.
    """
    if not interactive():
        yield
        return
    with _LayerBar(layer=layer, what=what, unit=unit):
        yield


class _LayerBar(Callback):
    def __init__(self, *, layer: str, what: str, unit: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # dask's callbacks are untyped
        self.layer, self.what, self.unit = layer, what, unit
        self.remaining: Counter[Hashable] = Counter()
        self.bar: Any = None

    def _step(self, key: Hashable) -> Hashable | None:
        """The first block index of a task of the layer (keys are `(name-token, i, j, ...)`), else None."""
        if isinstance(key, tuple) and len(key) > 1 and str(key[0]).rsplit("-", 1)[0] == self.layer:
            index: Hashable = key[1]
            return index
        return None

    def _start(self, dsk: Mapping[Hashable, Any]) -> None:
        self.remaining = Counter(step for step in map(self._step, dsk) if step is not None)
        if self.remaining:
            self.bar = progress_bar(total=len(self.remaining), what=self.what, unit=self.unit)

    def _posttask(self, key: Hashable, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        step = self._step(key)
        if step is None or self.bar is None:
            return
        self.remaining[step] -= 1
        if self.remaining[step] == 0:
            self.bar.update(1)

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

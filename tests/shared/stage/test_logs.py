"""What reaches stderr when a stage fails: the one error line, not the echoes of the same failure."""

from __future__ import annotations

import asyncio
import errno
import gc

import pytest

from deep_lulc.shared.stage.logs import configure_logging


def _abandon_failed_future(error: BaseException) -> None:
    """A future that failed and that nobody awaited, as zarr leaves behind when a sibling chunk write fails."""
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        try:
            raise error  # a raised error carries the traceback that asyncio prints
        except type(error) as raised:
            future.set_exception(raised)
        del future
        gc.collect()
    finally:
        loop.close()


def test_unretrieved_io_errors_of_concurrent_writes_are_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    _abandon_failed_future(OSError(errno.ENOSPC, "No space left on device"))
    err = capsys.readouterr().err
    assert "never retrieved" not in err
    assert "Traceback" not in err


def test_other_unretrieved_errors_still_reach_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    _abandon_failed_future(ValueError("a bug in a callback"))
    err = capsys.readouterr().err
    assert "exception was never retrieved" in err
    assert "Traceback" in err
    assert "ValueError: a bug" in err

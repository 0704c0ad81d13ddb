"""An `--out` that cannot be a folder is the user's to fix (exit 2, one line), never a transient error that Argo
retries, and it is said before any work is done."""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

import pytest

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.shared.io.publish import staged_output
from deep_lulc.shared.io.storage import classify_os_error

from ...conftest import BIN, cli_env


@pytest.mark.parametrize(
    "name", ["an-existing-file", "x" * 300, "an-existing-file/below-a-file"], ids=["file", "too-long", "below-file"]
)
def test_an_output_that_cannot_be_a_folder_is_bad_input(tmp_path: Path, name: str) -> None:
    (tmp_path / "an-existing-file").write_text("not a folder")
    with pytest.raises(BadInputError, match="cannot use the path while creating the output directory"):  # noqa: SIM117
        with staged_output(str(tmp_path / name)):
            pass
    assert (tmp_path / "an-existing-file").read_text() == "not a folder"


def test_only_storage_hiccups_stay_transient() -> None:
    assert isinstance(classify_os_error(OSError(errno.ENAMETOOLONG, "File name too long"), action="x"), BadInputError)
    assert isinstance(classify_os_error(OSError(errno.EIO, "Input/output error"), action="x"), TransientError)


def test_cli_refuses_a_file_as_out_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    target.write_text("a file")
    completed = subprocess.run(
        [str(BIN / "deep-lulc"), "synth", "--size", "128", "--dates", "4", "--out", str(target)],
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    assert completed.returncode == 2, completed.stderr
    lines = [line for line in completed.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, completed.stderr
    assert f"--out {target} is an existing file, not a folder" in lines[0]
    assert "fix: pass an --out whose names are under 255 characters" in lines[0]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("an-existing-file", r"is an existing file, not a folder"),
        ("x" * 300, r"has a name of 300 bytes \(at most 255\)"),
        ("an-existing-file/below-a-file", r"lies below \S+an-existing-file, which is a file"),
    ],
    ids=["file", "too-long", "below-file"],
)
def test_an_impossible_output_is_refused_before_the_stage_computes(tmp_path: Path, name: str, message: str) -> None:
    from deep_lulc.stages.synth import stage as synth
    from deep_lulc.stages.synth.params import SynthParams

    (tmp_path / "an-existing-file").write_text("not a folder")
    started = time.perf_counter()
    with pytest.raises(BadInputError, match=message):
        synth.run(inputs={}, output=str(tmp_path / name), params=SynthParams(size=4096))  # minutes, were it computed
    assert time.perf_counter() - started < 5

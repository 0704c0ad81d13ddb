"""Training logs off a terminal (a pipe, as in a pod): no progress frames, one line per epoch, no metric twice."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import BIN, cli_env

EPOCHS = 2
EPOCH_LINE = re.compile(r"epoch (\d+)/(\d+): train loss (\S+), valid loss (\S+), mIoU (\S+) \(")


@pytest.mark.slow
def test_piped_training_logs_one_line_per_epoch(tiny_chips: str, tmp_path: Path) -> None:
    out = tmp_path / "model"
    completed = subprocess.run(
        [
            str(BIN / "deep-lulc"),
            "train",
            "--chips",
            tiny_chips,
            "--out",
            str(out),
            "--epochs",
            str(EPOCHS),
            "--batch-size",
            "8",
            "--lr",
            "auto",
        ],  # the LR finder runs fastai's loop too
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        env=cli_env(),
    )
    stderr = completed.stderr
    assert completed.returncode == 0, stderr[-3000:]
    assert "\r" not in stderr, "progress-bar frames in a log"
    assert "train_loss" not in stderr, "fastai's metric table repeats the epoch lines"
    assert "LR finder suggests" in stderr
    epochs = [match for line in stderr.splitlines() if (match := EPOCH_LINE.search(line))]
    assert [(int(m.group(1)), int(m.group(2))) for m in epochs] == [(e, EPOCHS) for e in range(1, EPOCHS + 1)]
    history_file = next(out.rglob("history.csv"))
    with history_file.open() as handle:
        history = list(csv.DictReader(handle))
    for match, row in zip(epochs, history, strict=True):
        assert float(match.group(3)) == pytest.approx(float(row["train_loss"]), abs=5e-5)
        assert float(match.group(4)) == pytest.approx(float(row["valid_loss"]), abs=5e-5)
        assert stderr.count(match.group(4)) == 1, f"valid loss {match.group(4)} logged more than once"
    assert max(len(line) for line in stderr.splitlines()) < 400, "no line grows with the epoch"
    assert completed.stdout.count("\n") == 1, "stdout keeps the one result line"

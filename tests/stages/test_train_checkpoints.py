"""Training checkpoints beside an object-storage output: a killed run's retry resumes by itself and ends exactly
as a run never interrupted; another request's or a damaged checkpoint is never resumed."""

from __future__ import annotations

import json
import logging
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage
from deep_lulc.stages.train import stage as train
from deep_lulc.stages.train.checkpoints import (
    STATE,
    Checkpoints,
    TrainingState,
    file_ref,
    resume_name,
    resume_point,
    weights_name,
    write_atomically,
)
from deep_lulc.stages.train.params import TrainParams

from ..conftest import BIN, cli_env

EPOCHS = 4


def _history(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The history without the wall-clock seconds, which no two runs share."""
    return [{key: value for key, value in row.items() if key != "seconds"} for row in state["history"]]


def _remote_state(fs: Any, pointer: str) -> dict[str, Any] | None:
    fs.invalidate_cache()
    if not fs.exists(pointer):
        return None
    document: dict[str, Any] = json.loads(fs.cat_file(pointer))
    return document


def _train_command(chips: str, out: str) -> list[str]:
    return [
        str(BIN / "deep-lulc"),
        "train",
        "--chips",
        chips,
        "--out",
        out,
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "8",
    ]


def _pod(tmp_path: Path, name: str) -> dict[str, str]:
    """A fresh machine: its own temporary folder, so nothing but object storage carries over."""
    (tmp_path / name).mkdir()
    return cli_env(TMPDIR=str(tmp_path / name))


@pytest.mark.slow
def test_a_run_killed_on_object_storage_resumes_by_itself_exactly(
    tiny_chips: str, s3_bucket: str, tmp_path: Path
) -> None:
    out = f"s3://{s3_bucket}/runs/model"
    fs, root = storage.filesystem_for(out)
    pointer = f"{root}/checkpoints/{STATE}"
    killed = subprocess.Popen(
        _train_command(tiny_chips, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_pod(tmp_path, "pod-1"),
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        state = _remote_state(fs, pointer)
        if state is not None and state["epochs_done"] >= 1:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    interrupted = _remote_state(fs, pointer)
    assert interrupted is not None, "no checkpoint reached object storage"
    done = interrupted["epochs_done"]
    assert 1 <= done < EPOCHS, "the run must be killed part-way"
    assert not fs.exists(f"{root}/catalog.json")
    names = {path.rsplit("/", 1)[-1] for path in fs.ls(f"{root}/checkpoints", detail=False)}
    assert names == {STATE, weights_name(done), resume_name(done)}, "one checkpoint, the older ones removed"

    # the retry: the same command (no --resume) on another machine
    retried = subprocess.run(
        _train_command(tiny_chips, out), capture_output=True, text=True, check=False, env=_pod(tmp_path, "pod-2")
    )
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert f"resuming after epoch {done} of {EPOCHS} (best mIoU" in retried.stderr
    assert "weights only" not in retried.stderr
    result = json.loads(retried.stdout)
    assert result["resumed_after_epoch"] == done
    assert result["epochs_run"] == EPOCHS

    whole_out = f"s3://{s3_bucket}/runs/whole"
    whole = subprocess.run(
        _train_command(tiny_chips, whole_out), capture_output=True, text=True, check=False, env=_pod(tmp_path, "pod-3")
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "resuming" not in whole.stderr
    uninterrupted = json.loads(whole.stdout)
    assert uninterrupted["resumed_after_epoch"] is None
    (identifier,) = result["items"]
    assert uninterrupted["items"] == [identifier]
    weights = [fs.cat_file(f"{prefix}/{identifier}/model.safetensors") for prefix in (root, f"{s3_bucket}/runs/whole")]
    assert weights[0] == weights[1], "a resumed CPU run must end with the uninterrupted run's weights, byte for byte"
    for key in ("miou", "chip_miou", "iou", "seed_metric"):
        assert result[key] == uninterrupted[key], key
    final, reference = _remote_state(fs, pointer), _remote_state(fs, f"{s3_bucket}/runs/whole/checkpoints/{STATE}")
    assert final is not None
    assert reference is not None
    assert _history(final) == _history(reference)
    assert _history(final)[:done] == _history(interrupted)
    assert final["finished"], "checkpoints stay after success, marked finished"


@pytest.mark.slow
def test_checkpoints_of_another_request_are_replaced_not_resumed(
    tiny_chips: str, s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    out = f"s3://{s3_bucket}/model"
    fs, root = storage.filesystem_for(out)
    pointer = f"{root}/checkpoints/{STATE}"
    one = TrainParams(epochs=1, batch_size=8)
    first = train.run(inputs={"chips": tiny_chips}, output=out, params=one)
    assert first.extra["resumed_after_epoch"] is None
    committed = _remote_state(fs, pointer)
    assert committed is not None
    assert committed["finished"]
    assert committed["epochs_done"] == 1
    (identifier,) = first.items
    weights = fs.cat_file(f"{root}/{identifier}/model.safetensors")

    # Training ended but the run died before its catalog was published: the retry trains nothing.
    fs.rm_file(f"{root}/catalog.json")
    fs.rm_file(f"{root}/result.json")
    with caplog.at_level(logging.INFO):
        again = train.run(inputs={"chips": tiny_chips}, output=out, params=one)
    assert again.extra["resumed_after_epoch"] == 1
    assert "training had finished (1 epochs)" in caplog.text
    assert "epoch 1/1" not in caplog.text
    assert fs.cat_file(f"{root}/{identifier}/model.safetensors") == weights

    caplog.clear()
    other = one.model_copy(update={"seed": 1, "epochs": 2})
    with caplog.at_level(logging.INFO):
        replaced = train.run(inputs={"chips": tiny_chips}, output=out, params=other)
    assert "belong to another request" in caplog.text
    assert "resuming" not in caplog.text
    assert replaced.extra["resumed_after_epoch"] is None
    state = _remote_state(fs, pointer)
    assert state is not None
    assert state["fingerprint"] != committed["fingerprint"]
    assert [row["epoch"] for row in state["history"]] == [1, 2], "trained from the start"

    caplog.clear()
    with caplog.at_level(logging.INFO):
        redone = train.run(
            inputs={"chips": tiny_chips}, output=out, params=other.model_copy(update={"overwrite": True})
        )
    assert redone.extra["resumed_after_epoch"] is None, "--overwrite redoes the training too"
    assert "resuming" not in caplog.text


def _fake_checkpoint(folder: Path, fingerprint: str, epoch: int = 2) -> TrainingState:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / weights_name(epoch)).write_bytes(b"weights" * 1000)
    (folder / resume_name(epoch)).write_bytes(b"resume" * 1000)
    ref = file_ref(folder / weights_name(epoch))
    return TrainingState(
        epochs_done=epoch,
        best_epoch=epoch,
        lr=1e-3,
        fingerprint=fingerprint,
        history=[{"epoch": e, "miou": 0.1} for e in range(1, epoch + 1)],
        files={"last": ref, "best": ref, "resume": file_ref(folder / resume_name(epoch))},
        resume={"optimizer": []},
    )


def test_only_a_verified_checkpoint_of_the_same_request_is_resumed(
    s3_bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = f"s3://{s3_bucket}/out/checkpoints"
    fs, root = storage.filesystem_for(remote)
    writer = Checkpoints(tmp_path / "pod-1", remote)
    state = _fake_checkpoint(writer.folder, "request-a", epoch=1)
    writer.commit(state)
    state = _fake_checkpoint(writer.folder, "request-a", epoch=2)
    writer.commit(state)
    listed = {path.rsplit("/", 1)[-1] for path in fs.ls(root, detail=False)}
    assert listed == {STATE, weights_name(2), resume_name(2)}, "epoch 1's files go once epoch 2's pointer is up"

    reader = Checkpoints(tmp_path / "pod-2", remote)
    resumed = resume_point(reader, "request-a", mode=None)
    assert resumed is not None
    assert resumed.epochs_done == 2
    assert resumed.exact
    assert (reader.folder / weights_name(2)).read_bytes() == (writer.folder / weights_name(2)).read_bytes()

    with caplog.at_level(logging.WARNING):
        explicit = resume_point(Checkpoints(tmp_path / "pod-3", remote), "request-b", mode=True)
    assert explicit is not None
    assert explicit.epochs_done == 2
    assert not explicit.exact, "another request's checkpoint continues from its weights only, and says so"
    assert "not an exact resume" in caplog.text

    # A checkpoint file that is not what the pointer says (a torn upload, a stray write) is never loaded.
    fs.pipe_file(f"{root}/{weights_name(2)}", b"weights" * 10)
    with pytest.raises(BadInputError, match=r"damaged: weights-0002\.safetensors is missing or differs"):
        resume_point(Checkpoints(tmp_path / "pod-4", remote), "request-a", mode=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert resume_point(Checkpoints(tmp_path / "pod-5", remote), "request-a", mode=None) is None
    assert "is damaged" in caplog.text
    assert not fs.exists(f"{root}/{STATE}"), "a run that starts afresh removes the damaged checkpoint"
    assert not fs.exists(root) or not fs.ls(root, detail=False)

    writer.commit(_fake_checkpoint(writer.folder, "request-a", epoch=3))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert resume_point(Checkpoints(tmp_path / "pod-6", remote), "request-b", mode=None) is None
    assert "belong to another request" in caplog.text
    assert not fs.exists(f"{root}/{STATE}")

    writer.commit(_fake_checkpoint(writer.folder, "request-a", epoch=4))
    assert resume_point(Checkpoints(tmp_path / "pod-7", remote), "request-a", mode=False) is None
    assert not fs.exists(f"{root}/{STATE}"), "--no-resume starts afresh"


def test_a_local_checkpoint_is_verified_too(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    checkpoints.commit(_fake_checkpoint(checkpoints.folder, "request-a"))
    assert resume_point(checkpoints, "request-a", mode=None) is not None
    (checkpoints.folder / resume_name(2)).write_bytes(b"torn")
    with pytest.raises(BadInputError, match=r"damaged: resume-0002\.safetensors"):
        resume_point(checkpoints, "request-a", mode=True)
    (checkpoints.folder / STATE).write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert resume_point(checkpoints, "request-a", mode=None) is None
    assert "is not JSON" in caplog.text
    assert sorted(path.name for path in checkpoints.folder.iterdir()) == []
    with caplog.at_level(logging.WARNING):
        assert resume_point(checkpoints, "request-a", mode=True) is None
    assert "--resume: no checkpoint in" in caplog.text


def test_checkpoint_files_are_readable_by_everyone(tmp_path: Path) -> None:
    """safetensors creates its files 0600; a checkpoint is 0644 like every other output file, so a retry pod
    running as another user, or a user copying the run, can read it."""
    path = tmp_path / weights_name(1)
    write_atomically(path, lambda scratch: save_file({"w": torch.zeros(2)}, str(scratch)))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no scratch file left

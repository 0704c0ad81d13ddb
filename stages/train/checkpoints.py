"""Training checkpoints that outlive the machine: files named by epoch, committed by one small pointer.

A checkpoint is `weights-<epoch>.safetensors` (the network), `resume-<epoch>.safetensors` (the optimizer's
moments and torch's RNG) and `state.json`, the pointer: the history, the JSON half of the resume state, the
request's fingerprint and the size and SHA-256 of every file it names. The pointer is written last (a local
rename, one S3 PUT) and a resume verifies every file against it, so a run killed mid-write resumes from the
checkpoint before, never from a torn one. Files are never overwritten in place: a new epoch writes new names
and deletes the old ones only once the new pointer is committed.

For an object-storage output the checkpoints are written on the pod's disk and mirrored to
`<output>/checkpoints/` after every epoch: beside the output and outside its staging area, so the retry of a
preempted pod finds them. The fingerprint (version, inputs, resolved params, the chips' statistics and ids)
ties them to one request: a run never picks up another request's training state unasked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage

log = logging.getLogger(__name__)
FOLDER = "checkpoints"
STATE = "state.json"
LEGACY_LAST, LEGACY_BEST = "last.safetensors", "best.safetensors"  # checkpoints of versions before the pointer
OURS = re.compile(r"^(weights|resume)-\d{4,}\.safetensors$|^(last|best)\.safetensors$|^\..*\.tmp$|^state\.json$")


def weights_name(epoch: int) -> str:
    return f"weights-{epoch:04d}.safetensors"


def resume_name(epoch: int) -> str:
    return f"resume-{epoch:04d}.safetensors"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_ref(path: Path) -> dict[str, Any]:
    """What the pointer records of a file: enough to tell it from a torn or foreign one."""
    return {"name": path.name, "size": path.stat().st_size, "sha256": sha256_of(path)}


def matches(path: Path, ref: dict[str, Any]) -> bool:
    return path.is_file() and path.stat().st_size == ref.get("size") and sha256_of(path) == ref.get("sha256")


class DamagedCheckpointError(Exception):
    """A checkpoint that cannot be trusted: unreadable pointer, or a file it names missing or different."""


@dataclass
class TrainingState:
    """What a resumed run needs: where the schedule was, what the history says, and the files to load."""

    epochs_done: int = 0
    best_miou: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, float]] = field(default_factory=list)
    lr: float | None = None
    finished: bool = False  # training ended (all epochs, or early stopping): a resume only reloads the best weights
    fingerprint: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # last, best, resume -> name, size, sha256
    resume: dict[str, Any] = field(default_factory=dict)  # RNG, optimizer and loss-smoothing state (JSON half)

    @staticmethod
    def parse(text: str) -> TrainingState:
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise DamagedCheckpointError(f"{STATE} is not JSON ({exc})") from exc
        if not isinstance(document, dict) or not isinstance(document.get("epochs_done"), int):
            raise DamagedCheckpointError(f"{STATE} is not a training state")
        known = {f.name for f in dataclasses.fields(TrainingState)}
        return TrainingState(**{key: value for key, value in document.items() if key in known})

    @staticmethod
    def load(folder: Path) -> TrainingState | None:
        path = folder / STATE
        return TrainingState.parse(path.read_text()) if path.is_file() else None

    def save(self, folder: Path) -> None:
        scratch = folder / f".{STATE}.tmp"
        scratch.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        scratch.replace(folder / STATE)

    def weights(self, role: Literal["last", "best"]) -> str:
        ref = self.files.get(role)
        if ref:
            return str(ref["name"])
        return LEGACY_LAST if role == "last" else LEGACY_BEST

    @property
    def exact(self) -> bool:
        """Whether the optimizer and RNG state are recorded, so training continues exactly as if never stopped."""
        return "resume" in self.files and bool(self.resume)


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """`write(scratch_path)`, then a rename: a reader sees the whole file or none. Mode 0644 like every other
    output file: safetensors creates its files 0600, which would lock out a retry pod running as another user
    and anyone copying the run."""
    scratch = path.with_name(f".{path.name}.tmp")
    try:
        write(scratch)
        scratch.chmod(0o644)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


class Checkpoints:
    """A local checkpoint folder, mirrored to object storage when the output lives there."""

    def __init__(self, folder: Path, remote: str | None = None) -> None:
        self.folder, self.remote = folder, remote
        self._mirrored: set[str] = set()  # remote objects known identical to the local files of the same name
        self._remote_names: set[str] = set()  # remote objects seen, to delete once no pointer names them

    @staticmethod
    def beside(output: str) -> Checkpoints:
        """`<output>/checkpoints`: the folder itself for a local output; for object storage, a local folder
        keyed by the prefix, mirrored to the prefix's `checkpoints/`."""
        if storage.scheme_of(output) == "file":
            return Checkpoints(Path(storage.normalize_href(output)) / FOLDER)
        digest = hashlib.sha256(output.encode()).hexdigest()[:16]
        local = Path(tempfile.gettempdir()) / "deep-lulc-checkpoints" / digest
        return Checkpoints(local, storage.join_href(output, FOLDER))

    def remove_if_empty(self) -> None:
        """Drop the local folder when it holds nothing to resume from."""
        with contextlib.suppress(OSError):
            if self.folder.is_dir() and not any(self.folder.iterdir()):
                self.folder.rmdir()

    @property
    def where(self) -> str:
        return storage.redact(self.remote) if self.remote else str(self.folder)

    def _remote(self) -> tuple[Any, str]:
        assert self.remote is not None
        fs, root = storage.filesystem_for(self.remote)
        return fs, root.rstrip("/")

    def pointer(self) -> TrainingState | None:
        """The committed state (the mirror's when there is one, since the pod's disk does not survive), not yet
        verified; None when there is no checkpoint."""
        if self.remote is None:
            try:
                return TrainingState.load(self.folder)
            except OSError as exc:
                raise DamagedCheckpointError(str(exc)) from exc
        fs, root = self._remote()
        try:
            fs.invalidate_cache(root)
            if not fs.exists(f"{root}/{STATE}"):
                return None
            text = fs.cat_file(f"{root}/{STATE}").decode("utf-8")
            self._remote_names = {posix_name(entry) for entry in fs.ls(root, detail=False)}
        except UnicodeDecodeError as exc:
            raise DamagedCheckpointError(f"{STATE} is not text") from exc
        except OSError as exc:
            raise storage.classify_os_error(exc, action=f"reading the checkpoints in {self.where}") from exc
        return TrainingState.parse(text)

    def materialise(self, state: TrainingState) -> None:
        """Every file the pointer names present locally and verified (downloaded from the mirror if needed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if not state.files:  # a checkpoint from before the pointer: weights only, nothing to verify them by
            if self.remote is not None or not (self.folder / LEGACY_LAST).is_file():
                raise DamagedCheckpointError(f"{STATE} names no files")
            return
        for ref in state.files.values():
            name = str(ref.get("name", ""))
            if not OURS.match(name) or "/" in name:
                raise DamagedCheckpointError(f"{STATE} names an unexpected file {name!r}")
            path = self.folder / name
            if self.remote is not None and not matches(path, ref):
                try:
                    self._download(name, path)
                except FileNotFoundError as exc:
                    raise DamagedCheckpointError(f"{name} is missing") from exc
                except OSError as exc:
                    raise storage.classify_os_error(exc, action=f"reading the checkpoints in {self.where}") from exc
            if not matches(path, ref):
                raise DamagedCheckpointError(f"{name} is missing or differs from the size and SHA-256 {STATE} records")
            if self.remote is not None:
                self._mirrored.add(name)
        state.save(self.folder)

    def _download(self, name: str, path: Path) -> None:
        fs, root = self._remote()
        write_atomically(path, lambda scratch: fs.get_file(f"{root}/{name}", str(scratch)))

    def commit(self, state: TrainingState) -> None:
        """After an epoch's files are written: the pointer, the files no pointer names any more, the mirror."""
        state.save(self.folder)
        keep = {str(ref["name"]) for ref in state.files.values()} | {STATE}
        for path in self.folder.iterdir():
            if path.is_file() and path.name not in keep and OURS.match(path.name):
                path.unlink(missing_ok=True)
        if self.remote is not None:
            self._mirror(state, keep)

    def _mirror(self, state: TrainingState, keep: set[str]) -> None:
        """Files first, pointer last, then the objects the new pointer no longer names. A failed copy costs only
        this epoch's mirror (the previous pointer stays valid), so training goes on; a refusal stops it."""
        fs, root = self._remote()
        try:
            for name in sorted(keep - {STATE} - self._mirrored):
                fs.put_file(str(self.folder / name), f"{root}/{name}")
                self._mirrored.add(name)
            fs.put_file(str(self.folder / STATE), f"{root}/{STATE}")
            for name in sorted((self._mirrored | self._remote_names) - keep):
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(f"{root}/{name}")
                self._mirrored.discard(name)
                self._remote_names.discard(name)
        except PermissionError as exc:
            raise storage.classify_os_error(exc, action=f"writing the checkpoints to {self.where}") from exc
        except OSError as exc:
            log.warning(
                "could not copy the epoch %d checkpoint to %s (%s): training goes on, the next epoch tries again",
                state.epochs_done,
                self.where,
                exc,
            )

    def clear(self) -> None:
        """Remove every checkpoint, pointer first, so a run that starts afresh never leaves a stale one behind."""
        if self.folder.is_dir():
            (self.folder / STATE).unlink(missing_ok=True)
            for path in self.folder.iterdir():
                if path.is_file() and OURS.match(path.name):
                    path.unlink(missing_ok=True)
        if self.remote is None:
            return
        fs, root = self._remote()
        try:
            fs.invalidate_cache(root)
            if fs.exists(f"{root}/{STATE}"):
                fs.rm_file(f"{root}/{STATE}")
            names = {posix_name(entry) for entry in fs.ls(root, detail=False)} if fs.exists(root) else set()
            for name in sorted(n for n in names if OURS.match(n)):
                fs.rm_file(f"{root}/{name}")
        except PermissionError as exc:
            raise storage.classify_os_error(exc, action=f"removing the checkpoints in {self.where}") from exc
        except OSError as exc:
            log.warning("could not remove the old checkpoints in %s (%s)", self.where, exc)
        self._mirrored, self._remote_names = set(), set()


def posix_name(entry: str) -> str:
    return entry.rstrip("/").rsplit("/", 1)[-1]


def resume_point(checkpoints: Checkpoints, fingerprint: str, *, mode: bool | None) -> TrainingState | None:
    """The state to continue from, or None to train from the start (old checkpoints removed).

    mode None (the default): continue only a verified checkpoint of this very request; anything else is
    warned about and replaced. True (`--resume`): continue whatever checkpoint is there, a different
    request's from its weights and history only (as `--resume` always did); a damaged one is an error.
    False (`--no-resume`): always start afresh.
    """
    if mode is False:
        checkpoints.clear()
        return None
    try:
        state = checkpoints.pointer()
        if state is None:
            if mode:
                log.warning("--resume: no checkpoint in %s, training from the start", checkpoints.where)
            checkpoints.clear()
            return None
        same = state.fingerprint == fingerprint
        if not same and not mode:
            log.warning(
                "the checkpoints in %s belong to another request (other inputs, params or deep-lulc "
                "version): training from the start and replacing them",
                checkpoints.where,
            )
            checkpoints.clear()
            return None
        checkpoints.materialise(state)
    except DamagedCheckpointError as exc:
        if mode:
            raise BadInputError(
                f"--resume: the checkpoint in {checkpoints.where} is damaged: {exc}",
                fix="rerun with --no-resume to train from the start",
            ) from exc
        log.warning("the checkpoint in %s is damaged (%s): training from the start", checkpoints.where, exc)
        checkpoints.clear()
        return None
    if not same:
        log.warning(
            "--resume: the checkpoints in %s were written for other inputs or params: continuing from "
            "their weights and history, not an exact resume",
            checkpoints.where,
        )
        state.resume, state.finished = {}, False
    return state

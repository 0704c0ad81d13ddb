"""Atomic stage outputs: build the whole catalog in a staging directory, then move it into place.

`catalog.json` is the commit marker. Publication first removes the old marker, then moves every other
file, then writes the marker last, so a stage killed at any moment never leaves a `catalog.json` that
points at missing or half-written files (local renames are atomic; S3 PUTs are atomic per object).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deep_lulc.shared.errors import BadInputError, DeepLulcError
from deep_lulc.shared.io.storage import classify_os_error, filesystem_for, join_href, normalize_href, redact, scheme_of

CATALOG_NAME = "catalog.json"
STAGING_PREFIX = ".deep-lulc-staging-"
LOCK_NAME = ".deep-lulc-lock"

log = logging.getLogger(__name__)


class StagedOutput:
    """A local directory that becomes the stage's output when `publish` is called."""

    def __init__(self, output: str, path: Path) -> None:
        self.output = output
        self.path = path

    def publish(self) -> str:
        """Move the staged catalog into place and return the href of the published catalog.json."""
        if not (self.path / CATALOG_NAME).is_file():
            raise RuntimeError(f"stage wrote no {CATALOG_NAME} into its staging directory")
        try:
            if scheme_of(self.output) == "file":
                _publish_local(self.path, Path(self.output))
            else:
                _publish_remote(self.path, self.output)
        except DeepLulcError:
            raise
        except OSError as exc:
            raise classify_os_error(exc, action=f"writing the output to {redact(self.output)}") from exc
        return join_href(self.output, CATALOG_NAME)


@contextmanager
def staged_output(output: str) -> Iterator[StagedOutput]:
    """Yield a staging directory for `output`; it is removed whatever happens (SIGTERM included: the runtime
    turns it into an exception). A local `output` is locked for the whole run (`output_lock`), and staging
    folders that killed runs left there are removed."""
    output = normalize_href(output)
    created: Path | None = None
    with contextlib.ExitStack() as stack:
        if scheme_of(output) == "file":
            target = Path(output)
            try:
                created = target if not target.exists() else None
                target.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise classify_os_error(exc, action=f"creating the output directory {output}") from exc
            if not target.is_dir():
                raise classify_os_error(NotADirectoryError(20, "not a directory"), action=f"creating {output}")
            stack.enter_context(output_lock(target))
            _remove_stale_staging(target)
            # Staging beside the target keeps the final moves on one filesystem, hence atomic renames.
            staging = target / f"{STAGING_PREFIX}{uuid.uuid4().hex}"
            staging.mkdir()
        else:
            filesystem_for(output)  # reject unsupported schemes before any work
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX))
        stack.callback(shutil.rmtree, staging, ignore_errors=True)
        yield from _staged(output, staging, created)


def _staged(output: str, staging: Path, created: Path | None) -> Iterator[StagedOutput]:
    try:
        yield StagedOutput(output, staging)
    except DeepLulcError:
        _remove_if_empty(created)
        raise
    except OSError as exc:
        _remove_if_empty(created)
        if exc.errno == errno.ENOSPC or isinstance(exc, PermissionError):
            raise classify_os_error(exc, action=f"writing the output for {redact(output)}") from exc
        raise
    except Exception as exc:
        _remove_if_empty(created)
        if "No space left on device" in str(exc):  # GDAL reports a full disk as its own error class
            raise classify_os_error(OSError(errno.ENOSPC, str(exc)), action=f"writing {redact(output)}") from exc
        raise
    except BaseException:  # SIGTERM (as the runtime's exception), KeyboardInterrupt
        _remove_if_empty(created)
        raise


@contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold `target` for this run alone: a second run into the same --out is bad input naming it, never a
    silent mix of two runs' files. An advisory `flock` on a file in the folder, which the kernel releases
    when the process ends however it ends, so a killed run leaves no stale lock."""
    path = target / LOCK_NAME
    while True:
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise classify_os_error(exc, action=f"locking the output directory {target}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise BadInputError(
                f"another deep-lulc run (pid {holder}) is writing to {target}",
                fix="wait for it to finish, or pass another --out",
            ) from None
        except OSError:  # a filesystem without locks (some network mounts): publish unguarded, as before
            os.close(handle)
            log.warning("cannot lock %s: concurrent runs into it are not detected", target)
            yield
            return
        try:  # the holder before us may have removed the file while we waited: lock the file that is there
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(handle)
    try:
        with contextlib.suppress(OSError):  # the pid only helps the message; a full disk must not stop the lock
            os.ftruncate(handle, 0)
            os.pwrite(handle, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(handle)


def _remove_stale_staging(target: Path) -> None:
    """Staging folders of runs that were killed (SIGKILL leaves no chance to clean up): with the output locked,
    no other run can be writing them."""
    try:
        stale = [entry for entry in target.iterdir() if entry.name.startswith(STAGING_PREFIX) and entry.is_dir()]
    except OSError:
        return
    for entry in stale:
        log.info("removing %s, left by an interrupted run", entry.name)
        shutil.rmtree(entry, ignore_errors=True)


def _remove_if_empty(directory: Path | None) -> None:
    """A failed stage leaves no output folder behind when it was the one to create it."""
    if directory is not None and _only_staging(directory):
        shutil.rmtree(directory, ignore_errors=True)


def _only_staging(directory: Path) -> bool:
    try:
        return all(entry.name.startswith(STAGING_PREFIX) or entry.name == LOCK_NAME for entry in directory.iterdir())
    except OSError:
        return False


def _publish_local(staging: Path, target: Path) -> None:
    marker = target / CATALOG_NAME
    marker.unlink(missing_ok=True)
    for entry in sorted(staging.iterdir()):
        if entry.name == CATALOG_NAME:
            continue
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        elif destination.exists() or destination.is_symlink():
            destination.unlink()
        os.replace(entry, destination)
    os.replace(staging / CATALOG_NAME, marker)


def _publish_remote(staging: Path, output: str) -> None:
    fs, root = filesystem_for(output)
    marker = f"{root.rstrip('/')}/{CATALOG_NAME}"
    if fs.exists(marker):
        fs.rm(marker)
    files = sorted(p for p in staging.rglob("*") if p.is_file() and p != staging / CATALOG_NAME)
    for local in files:
        relative = local.relative_to(staging).as_posix()
        fs.put_file(str(local), f"{root.rstrip('/')}/{relative}")
    fs.put_file(str(staging / CATALOG_NAME), marker)
    log.info("published %d files to %s", len(files) + 1, redact(output))


NAME_MAX = 255  # bytes in one path component on Linux filesystems (ext4, xfs, overlayfs)


def check_output_path(output: str, *, file_output: bool = False) -> None:
    """Bad input, before any work, for a local --out no run could ever write: a name over 255 bytes, a
    folder output that is an existing file, or a path below an existing file. Found later, when the result
    is published, the same mistake would cost the whole computation."""
    if scheme_of(output) != "file":
        return
    path = Path(normalize_href(output))
    fix = "pass an --out whose names are under 255 characters and whose parent folders are folders"
    too_long = [part for part in path.parts if len(part.encode("utf-8")) > NAME_MAX]
    if too_long:
        raise BadInputError(
            f"--out {output} has a name of {len(too_long[0].encode())} bytes (at most {NAME_MAX})", fix=fix
        )
    if path.exists() and not path.is_dir() and not file_output:
        raise BadInputError(f"--out {path} is an existing file, not a folder", fix=fix)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(f"--out {path} lies below {parent}, which is a file", fix=fix)
            break


def write_file_atomically(href: str, data: bytes) -> str:
    """Write one object so readers see the old content or the new, never a torn file."""
    href = normalize_href(href)
    try:
        if scheme_of(href) == "file":
            target = Path(href)
            target.parent.mkdir(parents=True, exist_ok=True)
            scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            try:
                scratch.write_bytes(data)
                os.replace(scratch, target)
            finally:
                scratch.unlink(missing_ok=True)
        else:
            fs, path = filesystem_for(href)
            fs.pipe_file(path, data)  # one PUT: atomic per object
    except DeepLulcError:
        raise
    except OSError as exc:
        raise classify_os_error(exc, action=f"writing {redact(href)}") from exc
    return href

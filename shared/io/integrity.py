"""Content checksums: what a writer records about every file it publishes, and how readers hold it to that.

A size catches a truncated copy, not a flipped bit: a COG or a Zarr chunk whose bytes changed in place still
decodes, and yields a wrong map with exit 0. So every file a stage publishes gets `file:size` and
`file:checksum` (the STAC file extension's fields; the checksum a sha2-256 multihash) in its item, set in
one place when the catalog is saved (`seal_assets`), and readers verify a file before they use it
(`verify_file`, a streaming hash) or, for Zarr chunks, as each chunk is read (`zarr_store`).

Whole files get sha2-256, which every reader of the file extension knows. Zarr chunks, hundreds of MiB that a
stage reads and writes in seconds, get BLAKE3 (multihash 0x1e): as collision-resistant as SHA-256, three times
as fast on one core (2.5 GB/s here) and parallel across cores for large chunks, which keeps verification under
5 % of a stage's time. Both are multihashes, so every checksum says which algorithm made it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import blake3
import pystac
from pystac.extensions.file import FileExtension

from deep_lulc.shared.errors import BadInputError
from deep_lulc.shared.io import storage

SHA2_256 = "1220"  # multihash prefix: sha2-256, 32 bytes
BLAKE3 = "1e20"  # multihash prefix: blake3, 32 bytes
THREADED_HASH_BYTES = 1 << 20  # above this, BLAKE3 hashes on every core
BLOCK = 4 * 1024 * 1024  # bytes hashed per read: large enough for throughput, small enough for memory


def file_checksum(data: bytes) -> str:
    """`file:checksum` of `data`: a sha2-256 multihash, hex-encoded, as the file extension specifies."""
    return SHA2_256 + hashlib.sha256(data).hexdigest()


def chunk_checksum(data: bytes | memoryview) -> str:
    """The multihash a Zarr manifest records for one object: BLAKE3, threaded for large objects."""
    threads = blake3.blake3.AUTO if len(data) > THREADED_HASH_BYTES else 1
    return BLAKE3 + blake3.blake3(data, max_threads=threads).hexdigest()


def checksum_matches(data: bytes | memoryview, expected: str) -> bool:
    """Whether `data` has the multihash `expected` (sha2-256 or BLAKE3); any other algorithm never matches."""
    if expected.startswith(BLAKE3):
        return chunk_checksum(data) == expected
    if expected.startswith(SHA2_256):
        return SHA2_256 + hashlib.sha256(data).hexdigest() == expected
    return False


def checksum_of(href: str) -> tuple[int, str]:
    """Size and `file:checksum` of the object at `href`, hashed as it streams (never held whole)."""
    digest = hashlib.sha256()
    size = 0
    fs, path = storage.filesystem_for(href)
    with fs.open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
            size += len(block)
    return size, SHA2_256 + digest.hexdigest()


@dataclass(frozen=True)
class Recorded:
    """What a writer recorded about one file: its size and checksum (None: not recorded, older outputs)."""

    size: int | None = None
    checksum: str | None = None

    @staticmethod
    def of(asset: pystac.Asset) -> Recorded:
        owner = asset.owner
        if not isinstance(owner, pystac.Item | pystac.Collection) or not FileExtension.has_extension(owner):
            return Recorded()
        fields = FileExtension.ext(asset)
        return Recorded(fields.size, fields.checksum)


# Files verified in this process, by (href, size, mtime, checksum): a chip read every epoch or a class map
# opened twice is hashed once; a file changed since has another mtime and is hashed again.
_verified: set[tuple[str, int, str, str]] = set()
_verified_lock = threading.Lock()


def verify_file(href: str, recorded: Recorded, *, what: str, fix: str) -> None:
    """Bad input naming the file unless it is there, with the size and content its writer recorded."""
    fs, path = storage.filesystem_for(href)
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise BadInputError(f"{what} {storage.redact(href)} is missing", fix=fix) from exc
    except OSError as exc:
        raise storage.classify_os_error(exc, action=f"reading {what} {storage.redact(href)}") from exc
    actual = info.get("size")
    if recorded.size is not None and actual is not None and int(actual) != recorded.size:
        raise BadInputError(
            f"{what} {storage.redact(href)} is {int(actual)} bytes but its item recorded {recorded.size} "
            "(truncated or rewritten)",
            fix=fix,
        )
    if recorded.checksum is None:
        return
    if not recorded.checksum.startswith(SHA2_256):
        raise BadInputError(
            f"{what} {storage.redact(href)} records a file:checksum that is not a sha2-256 multihash "
            f"({recorded.checksum[:8]}...)",
            fix=fix,
        )
    mtime = info.get("mtime") or info.get("LastModified") or info.get("ETag") or 0
    key = (href, int(actual or -1), str(mtime), recorded.checksum)
    with _verified_lock:
        if key in _verified:
            return
    try:
        _, checksum = checksum_of(href)
    except OSError as exc:
        raise storage.classify_os_error(exc, action=f"reading {what} {storage.redact(href)}") from exc
    if checksum != recorded.checksum:
        raise BadInputError(
            f"{what} {storage.redact(href)} is damaged: its content differs from the file:checksum its item recorded",
            fix=fix,
        )
    with _verified_lock:
        _verified.add(key)


def seal_assets(items: Iterable[pystac.Item | pystac.Collection], root: Path) -> int:
    """Record `file:size` and `file:checksum` of every asset that is a local file under `root` (the staging
    folder being published); returns how many. A folder asset (a Zarr store) is left to its manifest."""
    sealed = 0
    for owner in items:
        for asset in owner.assets.values():
            href = asset.get_absolute_href()
            if href is None or storage.scheme_of(href) != "file":
                continue
            path = Path(storage.normalize_href(href))
            if not path.is_file() or not path.is_relative_to(root):
                continue
            size, checksum = checksum_of(str(path))
            fields = FileExtension.ext(asset, add_if_missing=True)
            if fields.checksum is not None and fields.checksum != checksum:
                raise RuntimeError(f"{path} changed after its writer recorded its checksum")
            fields.size = size
            fields.checksum = checksum
            sealed += 1
    return sealed

"""Reading hrefs of every scheme a stage accepts (local path, file://, http(s)://, s3://) through fsspec.

Object-store endpoints come from the standard AWS variables (`AWS_ENDPOINT_URL_S3`, then
`AWS_ENDPOINT_URL`), so the same container runs against AWS, MinIO or a test server unchanged; GDAL's
settings for the same endpoint are in `gdal_env`.
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fsspec
from fsspec.spec import AbstractFileSystem

from deep_lulc.shared.errors import BadInputError, TransientError

REMOTE_SCHEMES = ("s3", "http", "https")


def scheme_of(href: str) -> str:
    """The URL scheme, with plain paths (and Windows drive letters) reported as `file`."""
    scheme = urlsplit(href).scheme.lower()
    return scheme if len(scheme) > 1 else "file"


def is_remote(href: str) -> bool:
    return scheme_of(href) in REMOTE_SCHEMES


def normalize_href(href: str) -> str:
    """Absolute local path for local hrefs; remote URLs unchanged."""
    if scheme_of(href) == "file":
        path = href[len("file://") :] if href.startswith("file://") else href
        return str(Path(path).expanduser().resolve())
    return href


def s3_storage_options() -> dict[str, Any]:
    """s3fs options: the endpoint, and requester-pays when `AWS_REQUEST_PAYER` asks for it."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    if requester_pays():
        options["requester_pays"] = True
    return options


def requester_pays() -> bool:
    """Whether reads from S3 pay for themselves: `AWS_REQUEST_PAYER=requester`, GDAL's own variable, so one
    setting serves GDAL and s3fs alike."""
    value = os.environ.get("AWS_REQUEST_PAYER", "")
    if not value:
        return False
    if value == "requester":  # GDAL sends the value as it stands, and S3 knows only this one
        return True
    raise BadInputError(
        f"AWS_REQUEST_PAYER={value!r} is not understood", fix="set AWS_REQUEST_PAYER=requester, or unset it"
    )


def filesystem_for(href: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and the path inside it for an href."""
    scheme = scheme_of(href)
    if scheme == "file":
        return fsspec.filesystem("file"), normalize_href(href)
    if scheme == "s3":
        fs = fsspec.filesystem("s3", **s3_storage_options())
        return fs, href[len("s3://") :]
    if scheme in ("http", "https"):
        return fsspec.filesystem(scheme), href
    raise BadInputError(
        f"unsupported href scheme '{scheme}' in {redact(href)}",
        fix="use a local path, file://, http(s):// or s3:// href",
    )


def join_href(base: str, *parts: str) -> str:
    """Join path parts onto a local directory or a URL prefix."""
    if scheme_of(base) == "file":
        return str(Path(normalize_href(base)).joinpath(*parts))
    return posixpath.join(base.rstrip("/"), *parts)


def redact(href: str) -> str:
    """An href safe to log: user info and query strings (signed URLs, tokens) are removed."""
    parts = urlsplit(href)
    if not parts.scheme or len(parts.scheme) == 1:
        return href
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = "?<redacted>" if parts.query else ""
    return f"{parts.scheme}://{netloc}{parts.path}{query}"


def read_bytes(href: str, *, what: str = "input") -> bytes:
    """Read a whole object, translating storage failures into domain errors with the fix."""
    fs, path = filesystem_for(href)
    try:
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read()
            return data
    except FileNotFoundError as exc:
        raise BadInputError(
            f"{what} not found: {redact(href)}", fix="check the path or URL and that the object exists"
        ) from exc
    except IsADirectoryError as exc:
        raise BadInputError(
            f"{what} is a directory, not a file: {redact(href)}",
            fix="point at the catalog.json, collection.json or item JSON inside it",
        ) from exc
    except PermissionError as exc:
        raise BadInputError(
            f"access denied reading {what} {redact(href)}",
            fix="check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the object's permissions",
        ) from exc
    except OSError as exc:
        raise classify_os_error(exc, action=f"reading {what} {redact(href)}") from exc


def local_or_buffer(href: str, *, what: str, fix: str) -> str | io.BytesIO:
    """A local path as is (multi-file formats such as Shapefile need their siblings), a remote object as
    bytes in memory (GDAL reads it through /vsimem)."""
    href = normalize_href(href)
    if scheme_of(href) == "file":
        if not Path(href).exists():
            raise BadInputError(f"{what} not found: {href}", fix=fix)
        return href
    return io.BytesIO(read_bytes(href, what=what))


def read_json(href: str, *, what: str = "input") -> dict[str, Any]:
    raw = read_bytes(href, what=what)
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(
            f"{what} is not valid JSON: {redact(href)} ({exc})", fix="point at a STAC JSON document"
        ) from exc
    if not isinstance(document, dict):
        raise BadInputError(f"{what} is JSON but not an object: {redact(href)}", fix="point at a STAC JSON document")
    return document


def classify_os_error(exc: OSError, *, action: str) -> Exception:
    """Map a low-level storage error onto the exit-code classes: full disk is the user's, timeouts are transient."""
    import errno

    if exc.errno == errno.ENOSPC:
        return BadInputError(f"no space left on the device while {action}", fix="free space or choose another --out")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG) or isinstance(
        exc, FileExistsError | NotADirectoryError | IsADirectoryError
    ):  # the path itself is wrong (a file where a folder must be, a name too long): retrying cannot help
        return BadInputError(
            f"cannot use the path while {action}: {exc.strerror or exc}",
            fix="pass a folder that is not an existing file, with every name under 255 characters",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or isinstance(exc, PermissionError):
        # s3fs raises PermissionError("Forbidden") without an errno: a refusal, not a hiccup worth retrying
        return BadInputError(
            f"permission denied while {action}",
            fix="check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or choose a writable location",
        )
    return TransientError(
        f"storage error while {action}: {exc}", fix="retry; if it persists, check the storage service"
    )

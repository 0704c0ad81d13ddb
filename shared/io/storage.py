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
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import fsspec
from fsspec.spec import AbstractFileSystem

from deep_lulc.shared.errors import BadInputError, TransientError

REMOTE_SCHEMES = ("s3", "http", "https")
T = TypeVar("T")
CONNECT_TIMEOUT_S = 10.0
S3FS_TRIES = 2


def http_deadline() -> float:
    """Seconds one whole remote operation may take (`DEEP_LULC_HTTP_DEADLINE`, default ten request timeouts): a
    server trickling a byte a second never trips a per-read timeout, so a search, a token request or a document
    read is also bounded as a whole."""
    return _seconds("DEEP_LULC_HTTP_DEADLINE", default=None, example="600") or 10 * http_timeout()


def _seconds(variable: str, *, default: str | None, example: str) -> float | None:
    """A positive number of seconds from `variable` (None when it is unset and there is no default)."""
    raw = os.environ.get(variable, default)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise BadInputError(
            f"{variable}={raw!r} is not a positive number of seconds", fix=f"set it to e.g. {example}, or unset it"
        )
    return value


def within_deadline(call: Callable[[], T], *, what: str) -> T:
    """`call()`, or a transient error naming `what` once `http_deadline()` has passed.

    The call runs on a daemon thread: a stalled socket cannot be interrupted from outside, and a daemon
    thread still waiting when the stage exits does not hold the process open.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread as it is
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"deadline: {what}", daemon=True)
    deadline = http_deadline()
    worker.start()
    worker.join(deadline)
    if not outcome:
        raise TransientError(
            f"{what} did not finish within {deadline:g} s",
            fix="retry later (DEEP_LULC_HTTP_DEADLINE sets the limit); check the server",
        )
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value  # type: ignore[no-any-return]


def http_timeout() -> float:
    """Seconds any one remote request may take (`DEEP_LULC_HTTP_TIMEOUT`, default 60): STAC API calls, token
    endpoints, S3 and HTTP objects and GDAL's COG reads all get it, so no stage waits forever on a stall."""
    return _seconds("DEEP_LULC_HTTP_TIMEOUT", default="60", example="60") or 60.0


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
    # botocore waits 60 s per read by default but retries a stalled read again and again; bound both.
    options["config_kwargs"] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": http_timeout(),
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
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
        fs.retries = S3FS_TRIES  # s3fs tries 5 times around botocore's own tries: a stall would cost 10 deadlines
        return fs, href[len("s3://") :]
    if scheme in ("http", "https"):
        import aiohttp

        deadline = aiohttp.ClientTimeout(total=http_deadline(), connect=CONNECT_TIMEOUT_S, sock_read=http_timeout())
        return fsspec.filesystem(scheme, client_kwargs={"timeout": deadline}), href
    raise BadInputError(
        f"unsupported href scheme '{scheme}' in {redact(href)}",
        fix="use a local path, file://, http(s):// or s3:// href",
    )


LOCAL_ROOTS_VARIABLE = "DEEP_LULC_LOCAL_ROOTS"  # further folders catalogs may reference (os.pathsep-separated)
CONFINE_FIX = (
    "move the file under the catalog's folder, or allow its folder with --allow-local-root DIR "
    f"(or {LOCAL_ROOTS_VARIABLE})"
)


def allowed_local_roots() -> list[Path]:
    """The folders an operator allowed beyond each catalog's own (`--allow-local-root`, DEEP_LULC_LOCAL_ROOTS)."""
    raw = os.environ.get(LOCAL_ROOTS_VARIABLE, "")
    return [Path(normalize_href(part)) for part in raw.split(os.pathsep) if part.strip()]


def confine(href: str, *, root: str | None, what: str) -> None:
    """Bad input when `href` is a local file outside `root` (the folder of the STAC document the user passed;
    None: a remote document, which may reference no local file at all) and outside every allowed root.

    A catalog is data, possibly someone else's: without this, `../../../../etc/passwd` or an absolute path in
    an asset href makes a stage read whatever the pod can see. Links are resolved (`Path.resolve`), so a
    symlink out of the catalog is outside too.
    """
    if scheme_of(href) != "file":
        return
    path = Path(normalize_href(href))
    roots = [Path(normalize_href(root))] if root is not None else []
    if any(path.is_relative_to(allowed) for allowed in [*roots, *allowed_local_roots()]):
        return
    where = f"outside its catalog's folder {roots[0]}" if roots else "a local file, named by a remote catalog"
    raise BadInputError(f"{what} {href} is {where}", fix=CONFINE_FIX)


def folder_of(href: str) -> str | None:
    """The local folder of a local href (the root its catalog may reference files under); None when remote."""
    return str(Path(normalize_href(href)).parent) if scheme_of(href) == "file" else None


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

    def whole() -> bytes:
        with fs.open(path, "rb") as handle:
            data: bytes = handle.read()
            return data

    try:
        # A remote object is read under the overall deadline as well: a trickle never trips a read timeout.
        return within_deadline(whole, what=f"reading {what} {redact(href)}") if is_remote(href) else whole()
    except FileNotFoundError as exc:
        if _timed_out(exc):  # fsspec's HTTP filesystem reports any failed look-up as not found
            raise TransientError(
                f"{what} {redact(href)} did not answer (a stall past {http_timeout():g} s, or a 429/5xx)",
                fix="retry later (DEEP_LULC_HTTP_TIMEOUT sets the deadline); check the server",
            ) from exc
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


def _timed_out(exc: BaseException) -> bool:
    """Whether a timeout, a dropped connection or a 429/5xx answer lies anywhere in `exc`'s chain of causes."""
    import asyncio

    import aiohttp

    seen: BaseException | None = exc
    while seen is not None:
        outage = isinstance(seen, aiohttp.ClientResponseError) and (seen.status == 429 or seen.status >= 500)
        stall = isinstance(seen, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError)
        if outage or stall or isinstance(seen, aiohttp.ClientConnectionError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def local_or_buffer(href: str, *, what: str, fix: str) -> str | io.BytesIO:
    """A local path as is (multi-file formats such as Shapefile need their siblings), a remote object as
    bytes in memory (GDAL reads it through /vsimem)."""
    href = normalize_href(href)
    if scheme_of(href) == "file":
        if not Path(href).exists():
            raise BadInputError(f"{what} not found: {href}", fix=fix)
        return href
    return io.BytesIO(read_bytes(href, what=what))


def utf8(raw: bytes, *, href: str, what: str) -> str:
    """`raw` as text: JSON travels as UTF-8 (RFC 8259), and STAC and GeoJSON say so too."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        guess = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise BadInputError(
            f"{what} {redact(href)} is not UTF-8 text{guess}", fix="save it as UTF-8, as JSON requires"
        ) from exc


def read_json(href: str, *, what: str = "input") -> dict[str, Any]:
    raw = read_bytes(href, what=what)
    text = utf8(raw, href=href, what=what)
    try:
        document = json.loads(text)
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
        local = exc.filename is not None or exc.errno == errno.EROFS
        return BadInputError(
            f"permission denied while {action}" + (" (read-only filesystem)" if exc.errno == errno.EROFS else ""),
            fix="check the folder's permissions or choose a writable location"
            if local
            else "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or choose a writable location",
        )
    return TransientError(
        f"storage error while {action}: {exc}", fix="retry; if it persists, check the storage service"
    )

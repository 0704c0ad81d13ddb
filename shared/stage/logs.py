"""Logging to stderr, so stdout carries only the stage's JSON result line; secrets never reach it.

Libraries log URLs with their user info and signed query strings, and request headers, at DEBUG; every
record passes a filter that masks those and the literal values of credential environment variables.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings

SECRET_ENVIRONMENT = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "STAC_API_TOKEN")
_USER_INFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")
_QUERY = re.compile(r"(?P<key>[?&][^=&\s'\"]+=)[^&\s'\"]+")
_HEADER = re.compile(
    r"(?P<key>['\"]?(?:Authorization|X-Api-Key|Cookie|X-Amz-Security-Token)['\"]?\s*[:=]\s*)"
    r"(?P<quote>['\"]?)[^'\",}]+",
    re.IGNORECASE,
)


def redact_text(text: str) -> str:
    """Mask URL user info, query values, auth headers and credential values found in the environment."""
    text = _USER_INFO.sub(lambda m: f"{m.group('scheme')}<redacted>@", text)
    text = _QUERY.sub(lambda m: f"{m.group('key')}<redacted>", text)
    text = _HEADER.sub(lambda m: f"{m.group('key')}{m.group('quote')}<redacted>", text)
    for name in SECRET_ENVIRONMENT:
        value = os.environ.get(name)
        if value and len(value) >= 6:
            text = text.replace(value, "<redacted>")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_text(message)
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class SiblingFailureFilter(logging.Filter):
    """Drops asyncio's "Future exception was never retrieved" for I/O errors.

    zarr writes a store's chunks as concurrent futures; when the disk fills, the first failure propagates
    and becomes the stage's one error line, while the siblings that failed the same way are collected
    later and asyncio prints each one's traceback. Those repeat the reported error and bury it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        unretrieved = "exception was never retrieved" in str(record.msg)
        return not (unretrieved and record.exc_info is not None and isinstance(record.exc_info[1], OSError))


_NOISY = (
    "rasterio",
    "botocore",
    "aiobotocore",
    "s3fs",
    "fsspec",
    "urllib3",
    "asyncio",
    "distributed",
    "PIL",
    "pyogrio",
)


def configure_logging(*, debug: bool = False) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    # odc-stac reprojects through in-memory arrays that GDAL reports as ungeoreferenced: not the user's concern.
    warnings.filterwarnings("ignore", message="Dataset has no geotransform")
    # fastai still calls torch.jit.script at import; torch 2.14 warns about it on every start.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)
    # urllib3 warns of every retry of a broken connection; the retry policy is ours, and when it runs out the
    # stage's one error line names the host and the cause.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.DEBUG if debug else logging.ERROR)
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, SiblingFailureFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(SiblingFailureFilter())

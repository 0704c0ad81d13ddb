"""GDAL settings for reading rasters over HTTP(S) and S3, in one place for every reader (rasterio, odc-stac,
stackstac).

GDAL's defaults suit local disks: on a URL it lists the "directory" and probes for side-car files (`.ovr`,
`.aux.xml`, `.msk`) before reading a byte, and it gives up on the first HTTP 5xx. Cloud-optimised GeoTIFFs
carry everything inside, so the defaults here skip the probes, retry transient failures and cache blocks.

A variable the user set in the environment wins: GDAL reads its configuration from the environment when no
option overrides it, so a default is simply left out when the user set that name (`rasterio.Env` options
would otherwise shadow the user's value). Requester-pays buckets: `AWS_REQUEST_PAYER=requester`, read by
GDAL itself and turned into s3fs's `requester_pays` by `storage`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from deep_lulc.shared.io import storage

V = TypeVar("V")

CLOUD_DEFAULTS: Mapping[str, str] = {
    # A URL has no directory to list: do not ask, and do not look for side-car files.
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # Only rasters exist remotely ({noext}: hrefs without an extension, such as signed download URLs).
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.jp2,.vrt,{noext}",
    # Retry 429/5xx and dropped connections, with GDAL's growing delay between tries (seconds).
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    # Fetch the tiles of one read in parallel ranges, merged where they touch.
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    # Keep COG headers and blocks already fetched: per open file, and across files (128 MiB).
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 1024 * 1024),
    # Deadlines: a connection must open within 10 s, and a transfer slower than 1 KiB/s for 30 s is given up
    # (a server trickling a byte a second would otherwise hold the stage forever); the whole request's
    # deadline, GDAL_HTTP_TIMEOUT, follows DEEP_LULC_HTTP_TIMEOUT (`deadline_options`).
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_LOW_SPEED_LIMIT": "1024",
    "GDAL_HTTP_LOW_SPEED_TIME": "30",
}
# GDAL's (curl's) words for a failure that a later try may get past: a 5xx or 429 answer, a deadline, a refused
# or dropped connection, a name that did not resolve.
_TRANSIENT = re.compile(
    r"HTTP (response )?code:? ?(429|5\d\d)|timed out|too slow|Timeout|Connection (refused|reset|timed)"
    r"|Could not resolve|Failed to connect|Empty reply|transfer closed",
    re.IGNORECASE,
)


def is_transient(message: str) -> bool:
    """Whether a GDAL read error is an outage (exit 75, Argo retries) rather than a damaged file (exit 2)."""
    return bool(_TRANSIENT.search(message))


def is_remote_raster(href: str | Path) -> bool:
    """Whether GDAL reads `href` over the network (a URL, or a GDAL network path such as /vsis3/)."""
    text = str(href)
    return storage.is_remote(text) or (text.startswith("/vsi") and not text.startswith("/vsimem/"))


def s3_endpoint_options() -> dict[str, str]:
    """GDAL's spelling of the S3 endpoint fsspec uses (`AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return {}
    parts = urlsplit(endpoint)
    return {
        "AWS_S3_ENDPOINT": parts.netloc,
        "AWS_HTTPS": "YES" if parts.scheme == "https" else "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }


def without_user_set(options: Mapping[str, V]) -> dict[str, V]:
    """`options` less the names the user set in the environment (GDAL then reads the user's value)."""
    return {key: value for key, value in options.items() if key not in os.environ}


def remote_read_options() -> dict[str, str]:
    """Every GDAL option a remote read gets: the cloud defaults and the S3 endpoint, less what the user set.

    `AWS_REQUEST_PAYER` is checked here but never passed: only `requester` is accepted, which is what GDAL
    sends, and GDAL reads it from the environment itself. Passing a name the environment already holds
    would also make rasterio pin that value as a process-wide GDAL option when its outermost `Env` exits.
    """
    storage.requester_pays()
    deadline = {"GDAL_HTTP_TIMEOUT": str(max(1, round(storage.http_timeout())))}
    return without_user_set({**CLOUD_DEFAULTS, **deadline, **s3_endpoint_options()})


def read_options(hrefs: Iterable[str | Path]) -> dict[str, str]:
    """The GDAL options for reading `hrefs`: `remote_read_options()` when any of them is remote, else none
    (local reads keep GDAL's own defaults, side-car files included)."""
    return remote_read_options() if any(is_remote_raster(href) for href in hrefs) else {}

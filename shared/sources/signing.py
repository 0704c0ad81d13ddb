"""Signing asset hrefs for providers whose storage needs a token to read (`--sign`).

Planetary Computer's Azure Blob Storage answers 403 to a bare URL. The `planetary-computer` package signs
items: it asks the SAS token endpoint (`PC_SDK_SAS_URL`, by default Microsoft's public one, with the key in
`PC_SDK_SUBSCRIPTION_KEY` where one is set) for a token per storage container and appends it to each href.
The tokens are fetched here first, under the project's retry policy, so that a dead endpoint costs a
bounded wait and ends as a transient failure (exit 75) and a refusal as bad input (exit 2); the package's
own policy would retry ten times with growing delays.

A signed href is a credential that expires: it lives in asset hrefs only (an ItemCollection written by
`search --sign`, or the items `cube` loads), and every log, run record and provenance link masks query
strings (`storage.redact`, `logs.redact_text`). Hrefs already signed are signed afresh, since a token in a
stored ItemCollection may have expired.

Signers are looked up by name in `SIGNERS`; a provider profile (`providers.ProviderProfile.signing`) names
the one its hrefs need, and `Signing` (the `--sign` choices) must list the same names (a test checks).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import parse_qs, urlparse, urlsplit, urlunsplit

import pystac

from deep_lulc.shared.errors import BadInputError, TransientError
from deep_lulc.shared.io import storage
from deep_lulc.shared.sources.item_search import RETRY_STATUS, retry_policy

log = logging.getLogger(__name__)
TOKEN_MARGIN_S = 60  # a cached token closer to expiry than this is asked for again (as the package does)

T = TypeVar("T")
# The `--sign` choices: a Literal so that pydantic and the CLI offer them; the same names as `SIGNERS`.
Signing = Literal["none", "planetary-computer"]

# Query keys of an Azure SAS token: an href carrying them was signed before.
SAS_KEYS = frozenset({"st", "se", "sp", "sv", "sig"})
# Planetary Computer's public thumbnails account: the package leaves its URLs unsigned.
PUBLIC_ACCOUNT = "ai4edatasetspublicassets"


@dataclass(frozen=True)
class Signer:
    """An href patcher, like odc-stac's `patch_url`, but for a batch of items: a signer may prepare for the
    whole batch first (Planetary Computer fetches one token per storage container, under our retries)."""

    sign: Callable[[Sequence[pystac.Item]], list[pystac.Item]]
    help: str  # what `--sign NAME` does, for the option's help; empty for "none"


def sign_items(items: Sequence[pystac.Item], signing: Signing) -> list[pystac.Item]:
    """`items` with their asset hrefs signed as `signing` says (copies; "none" returns them as they are)."""
    signer = SIGNERS.get(signing)
    if signer is None:
        raise BadInputError(f"unknown signing {signing!r}", fix=f"use one of {', '.join(SIGNERS)}")
    return signer.sign(items)


def option_help() -> str:
    """The help of `--sign`, built from the signers so that a new one is described where it is declared."""
    described = "; ".join(f"{name} {signer.help}" for name, signer in SIGNERS.items() if signer.help)
    return f"Sign asset hrefs before use: {described}."


def _unsigned(items: Sequence[pystac.Item]) -> list[pystac.Item]:
    """Public hrefs (Earth Search's S3 and HTTPS objects) are read as they are."""
    return list(items)


def _sign_planetary_computer(items: Sequence[pystac.Item]) -> list[pystac.Item]:
    import planetary_computer
    from planetary_computer.settings import Settings

    Settings.get.cache_clear()  # PC_SDK_* as they are now, not as when the package was first used
    sas_url = str(Settings.get().sas_url or "").rstrip("/")
    unsigned = [_without_sas(item) for item in items]
    containers = sorted(_blob_containers(unsigned))
    for account, container in containers:
        url = f"{sas_url}/{account}/{container}"
        _asking(url, functools.partial(_fetch_token, url, Settings.get().subscription_key))
    # The tokens are cached now: the package signs without asking the endpoint again.
    for item in unsigned:
        _asking(sas_url, functools.partial(planetary_computer.sign_inplace, item))
    log.info("signed the assets of %d items for Planetary Computer (%d containers)", len(unsigned), len(containers))
    return unsigned


# Signer name -> signer; provider profiles name theirs (`none` for public hrefs).
SIGNERS: dict[str, Signer] = {
    "none": Signer(_unsigned, ""),
    "planetary-computer": Signer(
        _sign_planetary_computer,
        "appends a Planetary Computer SAS token (endpoint PC_SDK_SAS_URL, key PC_SDK_SUBSCRIPTION_KEY)",
    ),
}


def _fetch_token(url: str, subscription_key: str | None) -> None:
    """Ask the token endpoint with our retries and deadline, and leave the token in the package's cache.

    `planetary_computer.sas.get_token` asks without a timeout, so a stalled endpoint would hold the stage
    forever; the package signs from its cache (`TOKEN_CACHE`, keyed by the request URL) without asking again.
    """
    import planetary_computer.sas
    import requests

    cached = planetary_computer.sas.TOKEN_CACHE.get(url)
    if cached is not None and cached.ttl() >= TOKEN_MARGIN_S:
        return
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry_policy())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    headers = {"Ocp-Apim-Subscription-Key": subscription_key} if subscription_key else None
    response = storage.within_deadline(
        lambda: session.get(url, headers=headers, timeout=(storage.CONNECT_TIMEOUT_S, storage.http_timeout())),
        what=f"the token request to {storage.redact(url)}",
    )
    response.raise_for_status()
    planetary_computer.sas.TOKEN_CACHE[url] = planetary_computer.sas.SASToken(**response.json())


def _blob_storage_parts(href: str) -> tuple[str, str] | None:
    """(account, container) of an Azure Blob Storage href that the package signs, else None."""
    from planetary_computer.sas import BLOB_STORAGE_DOMAIN
    from planetary_computer.utils import parse_blob_url

    host = urlsplit(href).hostname or ""
    if not host.endswith(BLOB_STORAGE_DOMAIN) or host.split(".")[0] == PUBLIC_ACCOUNT:
        return None
    try:
        account, container = parse_blob_url(urlparse(href.rstrip("/")))
    except ValueError:
        return None
    return str(account), str(container)


def _without_sas(item: pystac.Item) -> pystac.Item:
    """A copy of `item` whose blob-storage hrefs carry no earlier SAS token (it may have expired)."""
    copy = item.clone()
    for asset in copy.assets.values():
        parts = urlsplit(asset.href)
        if parts.query and _blob_storage_parts(asset.href) and SAS_KEYS & set(parse_qs(parts.query)):
            asset.href = urlunsplit(parts._replace(query=""))
    return copy


def _blob_containers(items: Iterable[pystac.Item]) -> set[tuple[str, str]]:
    found = (_blob_storage_parts(asset.href) for item in items for asset in item.assets.values())
    return {parts for parts in found if parts is not None}


def _asking(endpoint: str, call: Callable[[], T]) -> T:
    """Run `call`, which may ask the token endpoint, with its failures mapped onto the exit codes."""
    import requests

    where = f"Planetary Computer token endpoint {storage.redact(endpoint)}"
    try:
        return call()
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in RETRY_STATUS:
            raise TransientError(
                f"{where} failed after retries (HTTP {status})", fix="retry later; check the service status"
            ) from exc
        raise BadInputError(
            f"{where} refused the token request (HTTP {status})",
            fix="check PC_SDK_SAS_URL, and PC_SDK_SUBSCRIPTION_KEY where the endpoint needs a key",
        ) from exc
    except requests.exceptions.RetryError as exc:  # the endpoint kept answering 429/5xx
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        raise TransientError(
            f"{where} failed after retries ({reason or type(exc).__name__})",
            fix="retry later; check the service status",
        ) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(
            f"{where} did not answer after retries ({type(exc).__name__})",
            fix="retry later; check PC_SDK_SAS_URL and the service status",
        ) from exc
    except (ValueError, TypeError) as exc:  # not JSON, or JSON without `token` and `msft:expiry`
        raise BadInputError(
            f"{where} did not answer a SAS token ({type(exc).__name__})",
            fix="point PC_SDK_SAS_URL at a Planetary Computer SAS token API",
        ) from exc
    except requests.RequestException as exc:
        raise TransientError(f"{where} failed ({type(exc).__name__})", fix="retry later") from exc

"""The installed version, recorded in every item a stage writes (`processing:software`)."""

from importlib.metadata import PackageNotFoundError, metadata, version

try:
    __version__ = version("deep-lulc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

SOFTWARE_NAME = "deep-lulc"
FALLBACK_SOURCE_URL = "https://github.com/deep-lulc/deep-lulc"


def source_url() -> str:
    """The project's `Source` URL as pyproject.toml declares it (read from the installed metadata, so it is
    written once), else the repository's address."""
    try:
        entries = metadata("deep-lulc").get_all("Project-URL") or []
    except PackageNotFoundError:
        return FALLBACK_SOURCE_URL
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "source" and url.strip():
            return str(url).strip()
    return FALLBACK_SOURCE_URL


def wheel_name() -> str:
    """The wheel `make dist` builds for this version."""
    return f"{SOFTWARE_NAME.replace('-', '_')}-{__version__}-py3-none-any.whl"

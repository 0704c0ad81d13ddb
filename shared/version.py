"""The installed version, recorded in every item a stage writes (`processing:software`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deep-lulc")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

SOFTWARE_NAME = "deep-lulc"

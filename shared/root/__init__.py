"""Deep LULC: land cover and its change from Sentinel-2 time series, as STAC-native processing stages.

This is the `deep_lulc` package itself; its code lives in two subpackages that pyproject.toml maps from the
repository's folders: `deep_lulc.shared` (shared/) and `deep_lulc.stages` (stages/, one module per stage,
each with a `run(*, inputs, output, params)` function). docs/python.md shows how to call a stage from Python.
The folder is shared/root/ only because the repository keeps every line of the product under shared/ and
stages/.
"""

from deep_lulc.shared.version import __version__

__all__ = ["__version__"]

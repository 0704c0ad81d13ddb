"""Logging to stderr, so stdout carries only the stage's JSON result line."""

from __future__ import annotations

import logging
import sys
import warnings

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
    # odc-stac reprojects through in-memory arrays that GDAL reports as ungeoreferenced: not the user's concern.
    warnings.filterwarnings("ignore", message="Dataset has no geotransform")
    # fastai still calls torch.jit.script at import; torch 2.14 warns about it on every start.
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.INFO if debug else logging.WARNING)

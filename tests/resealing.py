"""Tests that edit a published output on purpose record the edit in its items, as a writer would: the
readers refuse any file whose content differs from its item's `file:checksum`."""

from __future__ import annotations

import json
from pathlib import Path

import pystac

from deep_lulc.shared.io.integrity import checksum_of
from deep_lulc.shared.io.stac import seal_links


def reseal(catalog: Path) -> None:
    """Record the size and checksum of every local asset file of every item and collection under `catalog`."""
    root = pystac.read_file(str(catalog))
    assert isinstance(root, pystac.Catalog)
    owners: list[pystac.Item | pystac.Collection] = [*root.get_all_collections(), *root.get_items(recursive=True)]
    for owner in owners:
        path = Path(owner.get_self_href() or "")
        document = json.loads(path.read_text())
        for key, asset in owner.assets.items():
            file = Path(asset.get_absolute_href() or "")
            if file.is_file():
                size, checksum = checksum_of(str(file))
                document["assets"][key].update({"file:size": size, "file:checksum": checksum})
        path.write_text(json.dumps(document, indent=2))
    reseal_links(catalog)


def reseal_links(catalog: Path) -> None:
    """Record the checksum of every edited item and collection document in the links that point at it."""
    root = pystac.read_file(str(catalog))
    assert isinstance(root, pystac.Catalog)
    seal_links(root)

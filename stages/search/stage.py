"""`deep-lulc search`: write the matching items as an ItemCollection and summarise them per date."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping

import pystac

from deep_lulc.shared.contract import StageResult
from deep_lulc.shared.item_search import find_items
from deep_lulc.shared.publish import write_file_atomically
from deep_lulc.shared.scene_selection import query_from
from deep_lulc.shared.version import __version__
from deep_lulc.stages.search.params import SearchParams

STAGE = "search"
log = logging.getLogger(__name__)


def summary_lines(items: list[pystac.Item]) -> list[str]:
    """One line per acquisition: date, platform, cloud cover, id."""
    lines = []
    for item in items:
        cloud = item.properties.get("eo:cloud_cover")
        cloud_text = f"{float(cloud):5.1f}%" if cloud is not None else "    ?"
        moment = item.datetime.strftime("%Y-%m-%d %H:%M") if item.datetime else "?"
        lines.append(f"{moment}  {item.properties.get('platform', '?'):<12} cloud {cloud_text}  {item.id}")
    return lines


def run(*, inputs: Mapping[str, str], output: str, params: SearchParams) -> StageResult:
    """Search `inputs['stac']` for `inputs['aoi']` and write an ItemCollection to `output` (a .json href)."""
    query = query_from(inputs, params)
    items = find_items(query)
    for line in summary_lines(items):
        print(line, file=sys.stderr)
    collection = pystac.ItemCollection(
        [item.clone() for item in items],
        extra_fields={"deep-lulc:search": {"params": params.model_dump(mode="json"), "version": __version__}},
    )
    for item in collection.items:
        self_href = item.get_self_href()
        item.make_asset_hrefs_absolute()
        item.clear_links("root")
        item.clear_links("parent")
        item.clear_links("collection")
        if self_href:
            item.set_self_href(self_href)
    document = collection.to_dict(transform_hrefs=False)
    written = write_file_atomically(output, (json.dumps(document, indent=1) + "\n").encode())
    log.info("%d scenes written to %s", len(items), written)
    return StageResult(
        stage=STAGE,
        catalog=written,
        items=tuple(item.id for item in items),
        extra={"dates": sorted({i.datetime.date().isoformat() for i in items if i.datetime})},
    )

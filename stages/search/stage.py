"""`deep-lulc search`: write the matching items as an ItemCollection and summarise them per date."""

from __future__ import annotations

import logging
import sys

import pystac

from deep_lulc.shared.sources import sentinel2
from deep_lulc.shared.sources.item_search import find_items
from deep_lulc.shared.sources.scene_list import write_scene_list
from deep_lulc.shared.sources.scene_selection import SceneInputs, query_from
from deep_lulc.shared.sources.signing import sign_items
from deep_lulc.shared.stage.contract import StageResult
from deep_lulc.shared.stage.reruns import idempotent
from deep_lulc.stages.search.params import SearchParams

STAGE = "search"
log = logging.getLogger(__name__)


def summary_lines(items: list[pystac.Item]) -> list[str]:
    """One line per acquisition: date, platform, cloud cover, id."""
    lines = []
    for item in items:
        cloud = sentinel2.cloud_cover(item)
        cloud_text = f"{cloud:5.1f}%" if cloud is not None else "    ?"
        moment = item.datetime.strftime("%Y-%m-%d %H:%M") if item.datetime else "?"
        lines.append(f"{moment}  {item.properties.get('platform', '?'):<12} cloud {cloud_text}  {item.id}")
    return lines


@idempotent(STAGE, file_output=True)
def run(*, inputs: SceneInputs, output: str, params: SearchParams) -> StageResult:
    """Search `inputs.stac` for `inputs.aoi` and write an ItemCollection to `output` (a .json href)."""
    query = query_from(inputs, params)
    items = sign_items(find_items(query), params.sign)
    for line in summary_lines(items):
        print(line, file=sys.stderr)
    written = write_scene_list(
        items, output, params=params.model_dump(mode="json", exclude={"overwrite"}), source=query.source
    )
    log.info("%d scenes written to %s", len(items), written)
    return StageResult(
        stage=STAGE,
        catalog=written,
        items=tuple(item.id for item in items),
        extra={"dates": sorted({i.datetime.date().isoformat() for i in items if i.datetime})},
    )

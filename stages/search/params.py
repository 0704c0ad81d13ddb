"""Parameters shared by the stages that select scenes (`search`, `cube`)."""

from __future__ import annotations

from deep_lulc.shared.sources.scene_selection import SceneSelection


class SearchParams(SceneSelection):
    """List the scenes of a collection over an AOI and a time range (one line per date on stderr)."""

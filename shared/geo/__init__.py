"""Pure geometry: the pixel grid (an odc-geo GeoBox), windows over it, footprints and label erosion.

May import: the root modules (errors, version). No I/O lives here, so every layer above can use it.
"""

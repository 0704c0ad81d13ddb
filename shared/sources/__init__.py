"""Where imagery comes from: provider profiles (data, one per STAC provider), AOIs, the Sentinel-2 band
catalogue, scene search and selection, href signing and the scene list `search` writes.

May import: stage, io, geo and the root modules. The scene list lives here, not in products/, because it
is the record of a search and the search reads it back.
"""

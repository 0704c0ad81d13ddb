"""One module per artifact a stage hands to another: how it is written as STAC and how it is read back.

Each product module is the only place that knows its artifact's layout (item fields, asset keys, files),
so stages stay independent: they import products, never each other. Reads are verified against what the
writer recorded, so a lost chunk or a truncated file is bad input, never silently wrong numbers.

May import every other layer of shared/ (sources, models, lulc, stage, io, geo and the root modules).
"""

"""Land cover semantics: class schemes, label rasterisation, change transitions and accuracy metrics.

May import: io, geo and the root modules.
"""

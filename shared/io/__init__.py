"""Reading and writing bytes we can trust: storage (local, S3, HTTP) with deadlines, content checksums,
STAC documents, COGs through GDAL, atomic publication, previews and plots.

May import: geo and the root modules.
"""

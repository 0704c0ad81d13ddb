"""Deep LULC processing stages: each folder is one container step that reads and writes STAC."""

"""`deep-lulc evaluate`."""

"""`deep-lulc merge`."""

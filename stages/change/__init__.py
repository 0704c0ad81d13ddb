"""`deep-lulc change`."""

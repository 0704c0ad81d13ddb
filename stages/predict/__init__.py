"""`deep-lulc predict`."""

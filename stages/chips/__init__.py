"""`deep-lulc chips`: rasterised, eroded labels and feature windows, split without leakage, as STAC chips."""

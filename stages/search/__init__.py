"""`deep-lulc search`: the Sentinel-2 items an AOI and a time range select, as a STAC ItemCollection."""

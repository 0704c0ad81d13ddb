"""`deep-lulc cube`: Sentinel-2 reflectance and SCL on the AOI's UTM grid, as a Zarr datacube item."""

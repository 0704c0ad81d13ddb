"""`deep-lulc features`: cloud-filtered, temporally interpolated Sentinel-2 features."""

"""`deep-lulc synth`: a deterministic synthetic Sentinel-2 L2A catalog, the offline default for every stage."""

"""`deep-lulc demo`: the whole chain on the embedded synthetic catalog, growing with each stage."""

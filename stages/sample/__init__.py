"""`deep-lulc sample`: a stratified random sample of a map for reference labelling."""

"""`deep-lulc area`: error-adjusted areas and accuracies from a labelled sample."""

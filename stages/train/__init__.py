"""`deep-lulc train`: a fastai Dynamic U-Net on the chips, with class imbalance handled and true metrics."""

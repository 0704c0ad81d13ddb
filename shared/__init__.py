"""Building blocks every Deep LULC stage shares: the stage contract, storage, STAC helpers and metadata."""

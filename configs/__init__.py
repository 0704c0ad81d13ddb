"""Example run configs as package data, for `deep-lulc run` and `deep-lulc demo` (no code here)."""

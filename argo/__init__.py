"""The Argo manifests as package data: `deep-lulc run` reads the pipeline's DAG from them (no code here)."""

"""`deep-lulc run`: argo/pipeline.yaml's DAG on one machine, from one config file, each step a `deep-lulc` process."""

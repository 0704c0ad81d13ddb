"""The stage contract and runtime: the params and inputs models, results, the CLI wrapper that maps
errors to exit codes, reruns, logging and progress. Every stage is `run(*, inputs, output, params)`.

May import: io, geo and the root modules. Products and sources build their param models on it.
"""

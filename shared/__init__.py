"""What every Deep LULC stage shares, grouped by concept; lower layers never import higher ones.

    errors, version           the two root modules: import nothing from Deep LULC, importable by all
    geo/                      grids, windows, footprints, erosion: pure geometry, no I/O
    io/                       storage, checksums, STAC documents, COGs, atomic publication, previews
    stage/                    the stage contract and runtime: params, inputs, results, reruns, logs
    lulc/                     class schemes, labels, transitions, metrics
    models/                   the architecture registry, networks, windowed inference, devices
    sources/                  STAC providers, AOIs, scene search, signing, the scene list
    products/                 one module per artifact a stage hands to another

`tests/contract/test_layers.py` enforces the directions drawn in docs/architecture.md.
"""

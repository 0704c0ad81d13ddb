"""Deep models: the architecture registry, the networks it names, windowed inference and devices.

May import: io, geo and the root modules. Opening a features store is the features product's job, so
inference takes an opened dataset.
"""

"""``qtseg.bench``: the benchmark harness run on target devices (``qtseg-bench``).

Every runtime is reached through :func:`qtseg.backends.open_backend`; parity
numbers come from :mod:`qtseg.export.parity` (the export gate's own
function); complexity from :mod:`qtseg.models.complexity`. Heavy imports
(runtimes, matplotlib) happen only when a row or a plot needs them.
"""

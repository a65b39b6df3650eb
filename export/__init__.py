"""``qtseg.export``: checkpoints -> verified deployable artifacts (``qtseg-export``).

Heavy runtimes (OpenVINO, TensorRT) are imported only by the target module
that needs them, never at import time of this package.
"""

"""``qtseg.calibration``: calibration sets and INT8 quantization helpers (``qtseg-calib``).

A calibration set is a reusable artifact (preprocessed tensors + a manifest
with sources, hashes, selection rule and spec) built once from a dataset's
``train`` split and fed to every backend: ONNX Runtime (calibration data
reader -> explicit QDQ graph, also the source of TensorRT engines) and NNCF
(OpenVINO). Imports only qtseg core; runtimes are imported lazily.

```python
from qtseg.calibration import SelectionRule, build_set, save_set, load_set
calib = build_set("data/kvasir-seg", spec, rule=SelectionRule(size=128))
save_set(calib, "calib/kvasir-512")
```
"""

from importlib import import_module
from typing import Any

# Public names -> defining submodule. Loaded on first use (PEP 562), so that
# e.g. ``qtseg-export --help`` can read DEFAULT_METHOD without importing torch.
_EXPORTS = {
    "MIN_IMAGES": "artifact",
    "CalibrationError": "artifact",
    "CalibrationSet": "artifact",
    "is_set_dir": "artifact",
    "load_set": "artifact",
    "save_set": "artifact",
    "validate_set": "artifact",
    "build_set": "build",
    "GuardConfig": "guard",
    "GuardReport": "guard",
    "Scores": "guard",
    "LayerGroup": "guard",
    "run_guard": "guard",
    "score": "guard",
    "DEFAULT_METHOD": "methods",
    "METHODS": "methods",
    "CalibrationMethod": "methods",
    "SelectionRule": "selection",
    "select_samples": "selection",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'qtseg.calibration' has no attribute {name!r}")
    value = getattr(import_module(f"qtseg.calibration.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "MIN_IMAGES",
    "CalibrationError",
    "CalibrationMethod",
    "CalibrationSet",
    "GuardConfig",
    "GuardReport",
    "Scores",
    "LayerGroup",
    "SelectionRule",
    "build_set",
    "is_set_dir",
    "load_set",
    "run_guard",
    "save_set",
    "score",
    "select_samples",
    "validate_set",
]

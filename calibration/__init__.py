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

from qtseg.calibration.artifact import (
    MIN_IMAGES,
    CalibrationError,
    CalibrationSet,
    is_set_dir,
    load_set,
    save_set,
    validate_set,
)
from qtseg.calibration.build import build_set
from qtseg.calibration.guard import GuardConfig, GuardReport, HeldOut, LayerGroup, run_guard, score
from qtseg.calibration.methods import DEFAULT_METHOD, METHODS, CalibrationMethod
from qtseg.calibration.selection import SelectionRule, select_samples

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "MIN_IMAGES",
    "CalibrationError",
    "CalibrationMethod",
    "CalibrationSet",
    "GuardConfig",
    "GuardReport",
    "HeldOut",
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

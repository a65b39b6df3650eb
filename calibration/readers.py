"""One calibration set, fed to each runtime in the form it asks for.

- ONNX Runtime: a ``CalibrationDataReader`` (:func:`ort_reader`) with the
  ``__len__``/``set_range`` that chunked range collection needs.
- NNCF (OpenVINO): an ``nncf.Dataset`` (:func:`nncf_dataset`).
- TensorRT / TensorRT-RTX: nothing to feed. Their INT8 engines are built from
  the QDQ ONNX graph whose scales ONNX Runtime computed from this set, so the
  scales are explicit in the graph (TensorRT 11 and TensorRT-RTX have no
  implicit calibrators).

Runtimes are imported inside the functions, never at module import.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qtseg.calibration.artifact import CalibrationSet


def ort_reader(calib: CalibrationSet, input_name: str, *, batch_size: int = 1) -> Any:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over the set.

    Args:
        calib: the calibration set.
        input_name: name of the model's image input.
        batch_size: images per feed (1 for static-batch graphs).
    """
    from onnxruntime.quantization import CalibrationDataReader

    class SetReader(CalibrationDataReader):
        """Feeds ``{input_name: (b, 3, H, W) float32}`` in order; supports ranges."""

        def __init__(self) -> None:
            self.starts = list(range(0, len(calib), batch_size))
            self.begin, self.end = 0, len(self.starts)
            self.pos = 0

        def __len__(self) -> int:
            return len(self.starts)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.begin, self.end = start_index, min(end_index, len(self.starts))
            self.pos = self.begin

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.pos >= self.end:
                return None
            start = self.starts[self.pos]
            self.pos += 1
            return {input_name: np.ascontiguousarray(calib.x[start : start + batch_size], dtype=np.float32)}

        def rewind(self) -> None:
            self.pos = self.begin

    return SetReader()


def nncf_dataset(calib: CalibrationSet) -> Any:
    """An ``nncf.Dataset`` yielding ``(1, 3, H, W)`` float32 arrays, one image each."""
    import nncf

    class Items:
        def __len__(self) -> int:
            return len(calib)

        def __iter__(self):  # noqa: ANN204 - plain iterator protocol
            return calib.batches(1)

    return nncf.Dataset(Items())

"""The INT8 rows of the export target table and their builder.

``INT8_TARGETS`` are ordinary :class:`~qtseg.export.targets.Target` entries
(``requires_calibration=True``, graph ``fp32``: every INT8 artifact derives
from the FP32 ONNX graph); :func:`build` hands each to its family module.
Importing this module imports no runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtseg.export.targets import Target

if TYPE_CHECKING:
    from qtseg.export.pipeline import BuildResult, ExportJob


def build(job: "ExportJob", target: Target, staging: Path) -> "BuildResult":
    """Build one INT8 target into ``staging`` (dispatch on ``target.format``)."""
    if target.format == "onnx":
        from qtseg.export.int8_onnx import build as build_onnx

        return build_onnx(job, target, staging)
    if target.format == "openvino":
        from qtseg.export.int8_openvino import build as build_openvino

        return build_openvino(job, target, staging)
    from qtseg.export.int8_tensorrt import build as build_engine

    return build_engine(job, target, staging)


_ORT = ("onnx", "onnxruntime", "onnxslim")
_OV = ("openvino", "nncf", "onnx", "onnxslim")
_TRT = ("tensorrt", "onnx", "onnxruntime", "onnxslim", "cuda.bindings")
_RTX = ("tensorrt_rtx", "onnx", "onnxruntime", "onnxslim")
_ENGINE_OPTS = frozenset({"workspace", "timing_cache"})

INT8_TARGETS: tuple[Target, ...] = (
    Target("onnx-int8", "onnx", "int8", "fp32", build, _ORT, "ort", requires_calibration=True),
    Target("openvino-int8", "openvino", "int8", "fp32", build, _OV, "openvino", requires_calibration=True),
    Target("trt-int8", "tensorrt", "int8", "fp32", build, _TRT, "trt", _ENGINE_OPTS,
           requires_calibration=True, library="tensorrt"),
    Target("trtrtx-int8", "tensorrt", "int8", "fp32", build, _RTX, "trt",
           _ENGINE_OPTS | {"compute_capability"}, requires_calibration=True, library="tensorrt_rtx"),
)

"""Builder of the INT8 rows of the export target table.

The rows themselves live in :data:`qtseg.export.targets.TARGETS` (the one
table; ``requires_calibration=True``, graph ``fp32``: every INT8 artifact
derives from the FP32 ONNX graph); :func:`build` hands each to its family
module. Importing this module imports no runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from qtseg.export.targets import TARGETS, Target

if TYPE_CHECKING:
    from qtseg.export.pipeline import BuildResult, ExportJob

INT8_TARGETS: tuple[Target, ...] = tuple(t for t in TARGETS.values() if t.requires_calibration)


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Build one INT8 target into ``staging`` (dispatch on ``target.format``)."""
    if target.format == "onnx":
        from qtseg.export.int8_onnx import build as build_onnx

        return build_onnx(job, target, staging)
    if target.format == "openvino":
        from qtseg.export.int8_openvino import build as build_openvino

        return build_openvino(job, target, staging)
    from qtseg.export.int8_tensorrt import build as build_engine

    return build_engine(job, target, staging)

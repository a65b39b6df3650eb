"""OpenVINO IR targets (``openvino-fp32``, ``openvino-fp16``).

``ov.convert_model`` reads the checked FP32 ONNX graph; ``ov.save_model``
writes ``model.xml`` + ``model.bin``. FP16 means FP16-compressed weights
(``compress_to_fp16=True``); OpenVINO decompresses them and computes at the
device's inference precision. ``save_model`` compresses by default, so the
FP32 target passes ``compress_to_fp16=False`` explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qtseg.export.pipeline import BuildResult, ExportJob
    from qtseg.export.targets import Target

XML, BIN = "model.xml", "model.bin"


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Convert the FP32 ONNX graph to IR in ``staging``; parity runs it on OpenVINO CPU."""
    import openvino as ov
    from qtseg.export.pipeline import BuildResult, ParityCheck

    from qtseg.backends.openvino_backend import _meta

    onnx_path = job.graph_file(target.graph)
    compress = target.precision == "fp16"
    with job.progress.step(f"convert ONNX -> OpenVINO IR (openvino {ov.get_version().split('-')[0]})"):
        model = ov.convert_model(str(onnx_path))
        for key, value in job.rt_info(target).items():
            model.set_rt_info(value, ["qtseg", key])
    with job.progress.step(f"save IR ({'FP16-compressed' if compress else 'FP32'} weights)"):
        ov.save_model(model, str(staging / XML), compress_to_fp16=compress)

    def open_ir() -> object:
        from qtseg.backends.openvino_backend import OpenVINOBackend

        return OpenVINOBackend(staging / XML, device="cpu", precision=target.precision)

    return BuildResult(
        files={"model": XML, "weights": BIN},
        inputs=[_meta(p) for p in model.inputs],
        outputs=[_meta(p) for p in model.outputs],
        checks=[ParityCheck(f"{XML} on OpenVINO CPU (inference precision f32)", open_ir)],
        extra={"openvino": {"compress_to_fp16": compress, "source_graph": target.graph}},
        built="OpenVINO IR written",
    )

"""OpenVINO IR targets (``openvino-fp32``, ``openvino-fp16``).

``ov.convert_model`` reads the checked FP32 ONNX graph; ``ov.save_model``
writes ``model.xml`` + ``model.bin``. FP16 means FP16-compressed weights
(``compress_to_fp16=True``); OpenVINO decompresses them and computes at the
device's inference precision. ``save_model`` compresses by default, so the
FP32 target passes ``compress_to_fp16=False`` explicitly.
"""

from __future__ import annotations

from pathlib import Path

from qtseg.export.job import BuildResult, ExportJob, ParityCheck
from qtseg.export.target import Target

from qtseg.backends.base import Backend
from qtseg.manifest import INFERENCE_PRECISION

XML, BIN = "model.xml", "model.bin"
# The inference precision the FP32/FP16 IRs are verified at (and every loader pins):
# f32, because OpenVINO's CPU plugin would otherwise pick bf16 on CPUs that have it.
VERIFIED_PRECISION = "f32"


def openvino_check(path: Path, properties: dict[str, str], precision: str) -> ParityCheck:
    """Parity check opening ``path`` on OpenVINO CPU with exactly the manifest's ``properties``."""

    def open_ir() -> Backend:
        from qtseg.backends.openvino_backend import OpenVINOBackend

        return OpenVINOBackend(path, device="cpu", precision=precision, properties=properties)

    hint = properties.get(INFERENCE_PRECISION, "device default")
    return ParityCheck(f"{path.name} on OpenVINO CPU (inference precision {hint})", open_ir)


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Convert the FP32 ONNX graph to IR in ``staging``; parity runs it on OpenVINO CPU."""
    import openvino as ov

    from qtseg.backends.openvino_backend import _meta

    assert target.graph is not None
    onnx_path = job.graph_file(target.graph)
    compress = target.precision == "fp16"
    with job.progress.step(f"convert ONNX -> OpenVINO IR (openvino {ov.get_version().split('-')[0]})"):
        model = ov.convert_model(str(onnx_path))
        for key, value in job.rt_info(target).items():
            model.set_rt_info(value, ["qtseg", key])
    with job.progress.step(f"save IR ({'FP16-compressed' if compress else 'FP32'} weights)"):
        ov.save_model(model, str(staging / XML), compress_to_fp16=compress)
    properties = {INFERENCE_PRECISION: VERIFIED_PRECISION}
    return BuildResult(
        files={"model": XML, "weights": BIN},
        inputs=[_meta(p) for p in model.inputs],
        outputs=[_meta(p) for p in model.outputs],
        checks=[openvino_check(staging / XML, properties, target.precision)],
        properties=properties,
        details={"openvino": {"compress_to_fp16": compress, "source_graph": target.graph}},
        built="OpenVINO IR written",
    )

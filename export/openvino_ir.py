"""OpenVINO IR targets (``openvino-fp32``, ``openvino-fp16``, ``openvino-bf16``).

``ov.convert_model`` reads the checked FP32 ONNX graph; ``ov.save_model``
writes ``model.xml`` + ``model.bin``. FP16 means FP16-compressed weights
(``compress_to_fp16=True``); OpenVINO decompresses them and computes at the
device's inference precision. ``save_model`` compresses by default, so the
FP32 and BF16 targets pass ``compress_to_fp16=False`` explicitly.

An IR cannot carry its inference precision, so each target's
(``Target.inference_precision``: f32 for fp32/fp16, bf16 for bf16) goes into
the manifest's ``runtime.properties`` and the gate opens the staged IR with
exactly those properties, as every loader will. Channel LayerNorms are
rewritten without their transposes first
(:func:`qtseg.export.openvino_passes.channel_layernorm_to_mvn`).
"""

from __future__ import annotations

from pathlib import Path

from qtseg.backends.base import Backend
from qtseg.export.job import BuildResult, ExportJob, ParityCheck
from qtseg.export.openvino_passes import channel_layernorm_to_mvn
from qtseg.export.target import Target
from qtseg.manifest import INFERENCE_PRECISION

XML, BIN = "model.xml", "model.bin"


def verified_properties(target: Target) -> dict[str, str]:
    """``runtime.properties`` of an OpenVINO target on this machine: its inference precision."""
    hint = target.resolved_inference_precision()
    if hint is None:
        raise ValueError(f"OpenVINO target {target.name} states no inference precision")
    return {INFERENCE_PRECISION: hint}


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
        rewritten = channel_layernorm_to_mvn(model)
        for key, value in job.rt_info(target).items():
            model.set_rt_info(value, ["qtseg", key])
    with job.progress.step(f"save IR ({'FP16-compressed' if compress else 'FP32'} weights)"):
        ov.save_model(model, str(staging / XML), compress_to_fp16=compress)
    properties = verified_properties(target)
    return BuildResult(
        files={"model": XML, "weights": BIN},
        inputs=[_meta(p) for p in model.inputs],
        outputs=[_meta(p) for p in model.outputs],
        checks=[openvino_check(staging / XML, properties, target.precision)],
        properties=properties,
        details={"openvino": {"compress_to_fp16": compress, "source_graph": target.graph,
                              "inference_precision": properties[INFERENCE_PRECISION],
                              "rewrites": {"channel_layernorm_to_mvn": rewritten}}},
        built="OpenVINO IR written",
    )

"""ONNX targets (``onnx``, ``onnx-fp16``) and the ONNX graphs other targets derive from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtseg.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from qtseg.export.pipeline import BuildResult, ExportJob
    from qtseg.export.targets import Target

MODEL_FILENAME = "model.onnx"


def fp32_graph(job: ExportJob, *, io_fp16: bool = False) -> Any:
    """Exported, simplified and checked FP32 graph of the job's model."""
    from qtseg.export import onnx_graph

    if io_fp16:
        raise ValueError("--io-fp16 applies to FP16 graphs only")
    io_spec = job.io_spec
    detail = f"opset {job.options.opset}, {job.batch_label()}"
    with job.progress.step(f"export PyTorch -> ONNX ({detail}, TorchScript exporter)"):
        model = onnx_graph.export_fp32(job.model, io_spec, opset=job.options.opset)
    if job.options.simplify:
        with job.progress.step("simplify with onnxslim"):
            model = onnx_graph.simplify(model)
            onnx_graph.set_io_shapes(model, io_spec)
    with job.progress.step("check graph (onnx.checker, strict shape inference)"):
        onnx_graph.check_graph(model, io_spec)
    return model


def fp16_graph(job: ExportJob, *, io_fp16: bool = False) -> Any:
    """FP16 graph (explicit precision, block list in FP32) derived from the FP32 graph."""
    import onnx
    from qtseg.export import onnx_graph
    from qtseg.export.onnx_fp16 import convert_to_fp16, precision_counts

    base = job.graph_proto("fp32")
    block = job.fp16_block_list
    tails = tuple(f"everything after {t}" for t in block.fp32_after)
    label = ", ".join(block.op_types + block.name_patterns + tails) or "none"
    with job.progress.step(f"convert to FP16 (FP32 kept for: {label}; I/O {'fp16' if io_fp16 else 'fp32'})"):
        model = convert_to_fp16(base, block=block, io_fp16=io_fp16)
        if io_fp16:
            onnx_graph.set_io_shapes(model, job.io_spec, io_dtype=onnx.TensorProto.FLOAT16)
    with job.progress.step("check FP16 graph (onnx.checker, strict shape inference)"):
        onnx_graph.check_graph(model, job.io_spec)
    job.notes.setdefault("fp16_nodes", precision_counts(model))
    return model


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Write ``model.onnx`` of ``target`` into ``staging``; parity runs it on ONNX Runtime."""
    from qtseg.export.pipeline import BuildResult

    io_fp16 = target.precision == "fp16" and job.options.io_fp16
    data = job.graph_bytes(target.graph, io_fp16=io_fp16)
    path = staging / MODEL_FILENAME
    with job.progress.step(f"write {MODEL_FILENAME} ({len(data) / 1e6:.1f} MB)"):
        atomic_write_bytes(path, data)
    inputs, outputs = job.graph_io(target.graph, io_fp16=io_fp16)
    return BuildResult(
        files={"model": MODEL_FILENAME},
        inputs=inputs,
        outputs=outputs,
        checks=[job.ort_check(path, f"{MODEL_FILENAME} on onnxruntime CPU")],
        extra=job.graph_extra(target.graph, io_fp16=io_fp16),
        built="ONNX graph written",
    )

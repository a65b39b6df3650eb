"""ONNX targets (``onnx``, ``onnx-fp16``): the job's graph written as ``model.onnx``."""

from __future__ import annotations

from pathlib import Path

from qtseg.atomic import atomic_write_bytes
from qtseg.export.job import BuildResult, ExportJob
from qtseg.export.target import Target

MODEL_FILENAME = "model.onnx"


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Write ``model.onnx`` of ``target`` into ``staging``; parity runs it on ONNX Runtime."""
    assert target.graph is not None
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
        details=job.graph_details(target.graph, io_fp16=io_fp16),
        built="ONNX graph written",
    )

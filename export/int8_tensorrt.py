"""``trt-int8`` / ``trtrtx-int8``: engines built from the job's guarded QDQ graph.

TensorRT 11 and TensorRT-RTX have no implicit INT8 calibrators: the scales
must be explicit Q/DQ in the ONNX graph. The engine is therefore built from
the same QDQ graph as ``onnx-int8`` (same calibration set, same scales, same
layers kept in float by the accuracy guard), in TensorRT form
(:func:`qtseg.calibration.onnx_qdq.tensorrt_form`: constant DQs that are not
layer weights -- INT32 biases, INT8 scalars -- folded to their exact float values). The network is strongly typed, so layers without Q/DQ run in the
graph's float type (FP32).

Fallback: when the builder rejects the INT8 form of some nodes, those nodes
are named in its error; they are put back in float inside the graph
(:func:`~qtseg.calibration.onnx_qdq.keep_float`) and the build is retried, at
most :data:`MAX_FALLBACK_ROUNDS` times. The manifest lists them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_bytes
from qtseg.backends.base import Backend
from qtseg.calibration.onnx_qdq import keep_float, qdq_counts, tensorrt_form
from qtseg.export.int8_context import CONTEXT_KEY
from qtseg.export.int8_onnx import guarded_qdq, int8_calibration, int8_details, stamped_bytes
from qtseg.export.job import BuildResult, ExportJob, ParityCheck
from qtseg.export.target import Target
from qtseg.export.tensorrt_engine import LIBRARY_LABEL, EngineBuildError, build_engine

ENGINE, ONNX = "model.engine", "model.onnx"
MAX_FALLBACK_ROUNDS = 3
COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Sigmoid", "Concat", "MaxPool", "Resize")


def nodes_named_in(message: str, model: Any) -> list[str]:
    """Compute nodes a builder error points at (directly, or through their Q/DQ nodes)."""
    by_name = {n.name: n for n in model.graph.node if n.name}

    def named(text: str) -> bool:
        # whole names only: "x" must not match inside "index"
        return bool(text) and re.search(r"(?<![\w/.:])" + re.escape(text) + r"(?![\w/.])", message) is not None

    # A node is pointed at by its own name, or (Q/DQ) by the name of a tensor it reads.
    mentioned = [
        name for name, node in by_name.items()
        if named(name) or (node.op_type in ("QuantizeLinear", "DequantizeLinear") and any(map(named, node.input)))
    ]
    consumers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.name)
    out: set[str] = set()
    for name in mentioned:
        node = by_name[name]
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            pending = list(node.output)
            while pending:  # follow Q -> DQ -> consumer
                for c in consumers.get(pending.pop(), []):
                    cn = by_name.get(c)
                    if cn is None:
                        continue
                    if cn.op_type in ("QuantizeLinear", "DequantizeLinear"):
                        pending.extend(cn.output)
                    elif cn.op_type in COMPUTE_OPS:
                        out.add(c)
        elif node.op_type in COMPUTE_OPS:
            out.add(name)
    return sorted(out)


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Write the TensorRT-form QDQ ``model.onnx`` and build ``model.engine`` from it."""
    import onnx

    from qtseg.backends.tensorrt_backend import TensorRTBackend

    library = target.runtime
    label = LIBRARY_LABEL[library]
    qdq = guarded_qdq(job, staging.parent)
    set_id = job.notes[CONTEXT_KEY].calib.set_id
    float_model = onnx.load(str(job.graph_file("fp32")))
    base = onnx.load(str(qdq.path))
    fallback: list[str] = []
    attempts: list[str] = []
    onnx_path = staging / ONNX
    ccs = job.options.compute_capability if library == "tensorrt_rtx" else ()
    for round_ in range(MAX_FALLBACK_ROUNDS + 1):
        model = tensorrt_form(keep_float(base, float_model, qdq.excluded + fallback))
        atomic_write_bytes(onnx_path, stamped_bytes(job, model, set_id=set_id, form="tensorrt: float bias"))
        try:
            with job.progress.step(f"build {label} engine (INT8 QDQ, strongly typed, from {ONNX})"):
                info = build_engine(
                    onnx_path, staging / ENGINE, library=library,
                    workspace_bytes=job.options.workspace_mib << 20,
                    compute_capabilities=ccs, timing_cache=job.options.timing_cache,
                )
            break
        except EngineBuildError as exc:
            message = str(exc)
            attempts.append(message[:2000])
            named = [n for n in nodes_named_in(message, model) if n not in fallback]
            if not named or round_ == MAX_FALLBACK_ROUNDS:
                raise
            job.progress.info(f"{label} cannot build INT8 for {len(named)} node(s); keeping them in float: "
                              + ", ".join(named[:6]) + (" ..." if len(named) > 6 else ""))
            fallback.extend(named)
    job.progress.info(
        f"engine {info['engine_bytes'] / 1e6:.1f} MB in {info['build_seconds']} s, "
        f"targets {', '.join(info['compute_capabilities'])}"
    )

    def open_engine() -> Backend:
        return TensorRTBackend(staging / ENGINE, library=library, precision=target.precision)

    details = int8_details(job, qdq, form="tensorrt (float biases, same weight/activation scales)")
    details["tensorrt"] = info
    details["int8"]["tensorrt_fallback"] = {
        "float_nodes": fallback,
        "float_precision": "fp32 (strongly typed network: non-Q/DQ layers run in the graph's float type)",
        "failed_attempts": attempts,
        "graph": qdq_counts(onnx_path),
    }
    inputs, outputs = job.graph_io("fp32")
    return BuildResult(
        files={"engine": ENGINE, "onnx": ONNX},
        inputs=inputs,
        outputs=outputs,
        checks=[
            job.ort_check(onnx_path, f"{ONNX} (the engine's INT8 source graph) on onnxruntime CPU"),
            ParityCheck(f"{ENGINE} on {label}", open_engine),
        ],
        details=details,
        calibration=int8_calibration(job, qdq),
        built=f"{label} INT8 engine built" + (f" ({len(fallback)} node(s) kept in float)" if fallback else ""),
    )

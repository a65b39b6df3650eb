"""``onnx-int8``: explicit QDQ graph calibrated on a calibration set, accuracy-guarded.

Ranges come from ONNX Runtime on the FP32 graph (one pass over the set, once
per job); a QDQ graph is then written from the range table, scored against
FP32 PyTorch on the held-out images, and, when it costs more than the budget,
re-written with the most sensitive layer groups kept in float
(:func:`qtseg.calibration.run_guard`).

Two activation forms are built from the same range table, each guarded on
its own (:func:`guarded_qdq`):

- ``uint8`` (asymmetric, zero point from the range): what ``onnx-int8`` ships.
  ONNX Runtime's x86 CPU kernels fuse it into u8 x s8 ``QLinearConv`` /
  ``QGemm`` / ``QLinearMatMul``, which VNNI executes in one instruction; it is
  the only form measured faster than ONNX Runtime FP32 (docs/calibration.md).
- ``int8`` (symmetric, zero point 0): the form TensorRT accepts; the
  TensorRT INT8 targets build from it. ONNX Runtime runs it slower than FP32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_bytes
from qtseg.calibration import GuardConfig, GuardReport, run_guard
from qtseg.calibration.methods import CalibrationMethod
from qtseg.calibration.onnx_qdq import (
    QdqSettings,
    calibrate_ranges,
    keep_float,
    qdq_counts,
    quantize_qdq,
)
from qtseg.evaluation import Predictor
from qtseg.export import onnx_graph
from qtseg.export.int8_context import CONTEXT_KEY, excluded_nodes, int8_context
from qtseg.export.job import BuildResult, ExportJob
from qtseg.export.target import Target

MODEL_FILENAME = "model.onnx"
RANGES_FILENAME = "ranges.json"
RANGES_KEY = "ranges"
# Activation form of each INT8 family: ONNX Runtime's fast x86 form for onnx-int8,
# TensorRT's only accepted form (zero point 0) for the engines.
ORT_ACTIVATIONS, TENSORRT_ACTIVATIONS = "uint8", "int8"
# Session config entries the manifest hands to ONNX Runtime (open_backend
# applies them). Deliberately empty: "session.qdqisint8allowed=1" keeps s8s8
# kernels, which x86 has no single-instruction dot product for (VNNI is u8 x s8);
# it made the symmetric form 1.1-1.9x slower still (docs/calibration.md, "Latency").
ORT_SESSION_CONFIG: dict[str, str] = {}


@dataclass
class GuardedQdq:
    """The job's guarded QDQ graph.

    Attributes:
        path: the QDQ ONNX file (ONNX Runtime form, INT32 biases).
        table: the range table it was quantized from (JSON).
        method: calibration method label.
        ranges: range-table file and calibration stats.
        quantization: scheme and node counts.
        guard: the accuracy-guard report.
        excluded: node names kept in float.
        activations: ``"uint8"`` (asymmetric) or ``"int8"`` (symmetric).
    """

    path: Path
    table: Path
    method: str
    ranges: dict[str, Any]
    quantization: dict[str, Any]
    guard: GuardReport
    excluded: list[str]
    activations: str


def _ort_predictor(path: Path) -> Predictor:
    from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, device="cpu")
    return backend.infer


def _job_ranges(job: ExportJob, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The job's range table (one ONNX Runtime pass over the calibration set), cached."""
    ctx = int8_context(job, out_dir)
    if RANGES_KEY in ctx.cache:
        return ctx.cache[RANGES_KEY]
    method = CalibrationMethod.parse(ctx.options.calib_method)
    work = job.workdir / "int8"
    work.mkdir(exist_ok=True)
    table = work / f"ranges-{method.label.replace(':', '-')}.json"
    with job.progress.step(f"calibrate ranges on {len(ctx.calib)} images ({method.label}, onnxruntime)"):
        ranges = calibrate_ranges(job.graph_file("fp32"), ctx.calib, method, table, workdir=work)
    job.progress.info(f"ranges of {ranges['tensors']} tensors in {ranges['seconds']} s")
    ctx.cache[RANGES_KEY] = (table, ranges)
    return table, ranges


def guarded_qdq(job: ExportJob, out_dir: Path, activations: str = TENSORRT_ACTIVATIONS) -> GuardedQdq:
    """Quantize the job's FP32 graph in one activation form and guard it; cached per form.

    Args:
        job: the export job.
        out_dir: the export output folder (see :func:`int8_context`).
        activations: ``"int8"`` (symmetric, TensorRT) or ``"uint8"`` (asymmetric, ONNX Runtime).
    """
    ctx = int8_context(job, out_dir)
    key = f"qdq-{activations}"
    if key in ctx.cache:
        return ctx.cache[key]
    import onnx

    method = CalibrationMethod.parse(ctx.options.calib_method)
    settings = QdqSettings(activations=activations)
    fp32 = job.graph_file("fp32")
    table, ranges = _job_ranges(job, out_dir)
    work = table.parent
    full = work / f"qdq-{activations}-full.onnx"
    with job.progress.step(f"quantize: INT8 QDQ graph from the range table ({activations} activations)"):
        info = quantize_qdq(fp32, full, table, method, settings=settings)
    float_model, qdq_model = onnx.load(str(fp32)), onnx.load(str(full))
    names = [n.name for n in float_model.graph.node]
    built: dict[tuple[str, ...], tuple[Path, list[str]]] = {(): (full, [])}

    def build(kept: tuple[str, ...]) -> Any:
        key = tuple(sorted(kept))
        if key not in built:
            exclude = excluded_nodes(ctx.groups, key, names)
            path = work / f"qdq-{activations}-{len(built)}.onnx"
            onnx.save(keep_float(qdq_model, float_model, exclude), str(path))
            built[key] = (path, exclude)
        return _ort_predictor(built[key][0])

    config = GuardConfig(max_dice_drop_pp=ctx.options.max_dice_drop, max_kept=ctx.options.max_kept)
    groups = ctx.groups if ctx.options.search else []
    with job.progress.step(f"accuracy guard (onnxruntime, {activations} activations, "
                           f"budget {config.max_dice_drop_pp} pp)"):
        report = run_guard(
            ctx.reference, build, groups, ctx.held, job.spec, config=config,
            reference_predict=_ort_predictor(fp32), log=job.progress.info,
        )
    job.progress.info(report.summary())
    if not report.passed:
        raise RuntimeError(f"INT8 accuracy guard failed: {report.summary()}")
    build(tuple(report.kept_float))
    path, exclude = built[tuple(sorted(report.kept_float))]
    info.update(qdq_counts(path), excluded_nodes=len(exclude))
    result = GuardedQdq(
        path=path,
        table=table,
        method=method.label,
        ranges={"table": table.name, **ranges},
        quantization={**settings.to_dict(), **info},
        guard=report,
        excluded=exclude,
        activations=activations,
    )
    ctx.cache[key] = result
    return result


def stamped_bytes(job: ExportJob, model: Any, *, set_id: str, form: str) -> bytes:
    """Serialize ``model`` with the job's metadata_props, marked INT8 + calibration set."""
    items = job.onnx_metadata("fp32")
    items.update({"precision": "int8", "graph": f"int8-qdq ({form})", "calibration_set": set_id})
    onnx_graph.set_metadata(model, items)
    return onnx_graph.serialize(model)


def int8_calibration(job: ExportJob, qdq: GuardedQdq) -> dict[str, Any]:
    """``manifest["calibration"]`` of the INT8 targets built from the QDQ graph."""
    return job.notes[CONTEXT_KEY].calibration_summary(qdq.method, {"ranges": qdq.ranges})


def int8_details(job: ExportJob, qdq: GuardedQdq, *, form: str) -> dict[str, Any]:
    """Manifest ``details`` shared by the INT8 targets built from the QDQ graph."""
    ctx = job.notes[CONTEXT_KEY]
    details = job.graph_details("fp32")
    details["int8"] = {
        "form": form,
        "quantization": qdq.quantization,
        "kept_float": {"groups": qdq.guard.kept_float, "nodes": qdq.excluded},
        "accuracy_guard": qdq.guard.to_dict(),
        "options": ctx.options.to_dict(),
    }
    return details


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Write the guarded uint8-activation QDQ ``model.onnx``; parity runs it on ONNX Runtime."""
    import onnx

    qdq = guarded_qdq(job, staging.parent, ORT_ACTIVATIONS)
    model = onnx.load(str(qdq.path))
    set_id = job.notes[CONTEXT_KEY].calib.set_id
    data = stamped_bytes(job, model, set_id=set_id, form="onnxruntime: uint8 activations, int32 bias")
    path = staging / MODEL_FILENAME
    with job.progress.step(f"write {MODEL_FILENAME} ({len(data) / 1e6:.1f} MB, INT8 QDQ)"):
        atomic_write_bytes(path, data)
    # The range table travels with the graph: re-quantizing (other layers in
    # float, another QDQ form) needs no calibration pass, and the scales can be audited.
    atomic_write_bytes(staging / RANGES_FILENAME, qdq.table.read_bytes())
    inputs, outputs = job.graph_io("fp32")
    return BuildResult(
        files={"model": MODEL_FILENAME, "ranges": RANGES_FILENAME},
        inputs=inputs,
        outputs=outputs,
        checks=[job.ort_check(path, f"{MODEL_FILENAME} (INT8 QDQ) on onnxruntime CPU")],
        properties=dict(ORT_SESSION_CONFIG),
        details=int8_details(job, qdq, form="onnxruntime (uint8 asymmetric activations, int32 biases)"),
        calibration=int8_calibration(job, qdq),
        built=f"INT8 QDQ graph written ({qdq.guard.summary()})",
    )

"""``onnx-int8``: explicit QDQ graph calibrated on a calibration set, accuracy-guarded.

Ranges come from ONNX Runtime on the FP32 graph (one pass over the set);
the QDQ graph is then written from the range table, scored against FP32
PyTorch on the held-out images, and, when it costs more than the budget,
re-written with the most sensitive layer groups kept in float
(:func:`qtseg.calibration.run_guard`). The TensorRT INT8 targets reuse the
guarded graph of the same job (:func:`guarded_qdq`), so every INT8 artifact
of a run carries the same scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtseg.calibration import GuardConfig, GuardReport, run_guard
from qtseg.calibration.methods import CalibrationMethod
from qtseg.calibration.onnx_qdq import QdqSettings, calibrate_ranges, keep_float, qdq_counts, quantize_qdq
from qtseg.export import onnx_graph
from qtseg.export.int8_context import CONTEXT_KEY, excluded_nodes, int8_context
from qtseg.export.job import BuildResult, ExportJob
from qtseg.export.target import Target

from qtseg.atomic import atomic_write_bytes
from qtseg.evaluation import Predictor

MODEL_FILENAME = "model.onnx"
RANGES_FILENAME = "ranges.json"
QDQ_KEY = "qdq"
# Session config entries the manifest hands to ONNX Runtime (open_backend
# applies them). Deliberately empty: "session.qdqisint8allowed=1" (keep s8s8
# kernels on x86) made this model 1.1-1.2x slower on an AVX2 EPYC and
# 1.3-1.9x slower on a VNNI/AMX Xeon at 1-4 threads than ORT's default
# s8 -> u8 rewrite (docs/calibration.md, "Latency").
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
    """

    path: Path
    table: Path
    method: str
    ranges: dict[str, Any]
    quantization: dict[str, Any]
    guard: GuardReport
    excluded: list[str]


def _ort_predictor(path: Path) -> Predictor:
    from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(path, device="cpu")
    return backend.infer


def guarded_qdq(job: ExportJob, out_dir: Path) -> GuardedQdq:
    """Calibrate, quantize and guard the job's FP32 graph once; cached on the job."""
    ctx = int8_context(job, out_dir)
    if QDQ_KEY in ctx.cache:
        return ctx.cache[QDQ_KEY]
    import onnx

    method = CalibrationMethod.parse(ctx.options.calib_method)
    settings = QdqSettings()
    fp32 = job.graph_file("fp32")
    work = job.workdir / "int8"
    work.mkdir(exist_ok=True)
    table = work / f"ranges-{method.label.replace(':', '-')}.json"
    with job.progress.step(f"calibrate ranges on {len(ctx.calib)} images ({method.label}, onnxruntime)"):
        ranges = calibrate_ranges(fp32, ctx.calib, method, table, settings=settings, workdir=work)
    job.progress.info(f"ranges of {ranges['tensors']} tensors in {ranges['seconds']} s")
    full = work / "qdq-full.onnx"
    with job.progress.step("quantize: INT8 QDQ graph from the range table"):
        info = quantize_qdq(fp32, full, table, method, settings=settings)
    float_model, qdq_model = onnx.load(str(fp32)), onnx.load(str(full))
    names = [n.name for n in float_model.graph.node]
    built: dict[tuple[str, ...], tuple[Path, list[str]]] = {(): (full, [])}

    def build(kept: tuple[str, ...]) -> Any:
        key = tuple(sorted(kept))
        if key not in built:
            exclude = excluded_nodes(ctx.groups, key, names)
            path = work / f"qdq-{len(built)}.onnx"
            onnx.save(keep_float(qdq_model, float_model, exclude), str(path))
            built[key] = (path, exclude)
        return _ort_predictor(built[key][0])

    config = GuardConfig(max_dice_drop_pp=ctx.options.max_dice_drop, max_kept=ctx.options.max_kept)
    groups = ctx.groups if ctx.options.search else []
    with job.progress.step(f"accuracy guard (onnxruntime, budget {config.max_dice_drop_pp} pp)"):
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
    )
    ctx.cache[QDQ_KEY] = result
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
    """Write the guarded QDQ ``model.onnx`` into ``staging``; parity runs it on ONNX Runtime."""
    import onnx

    qdq = guarded_qdq(job, staging.parent)
    model = onnx.load(str(qdq.path))
    set_id = job.notes[CONTEXT_KEY].calib.set_id
    data = stamped_bytes(job, model, set_id=set_id, form="onnxruntime: int32 bias")
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
        details=int8_details(job, qdq, form="onnxruntime (int32 biases)"),
        calibration=int8_calibration(job, qdq),
        built=f"INT8 QDQ graph written ({qdq.guard.summary()})",
    )

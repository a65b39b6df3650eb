"""``openvino-int8``: NNCF post-training quantization of the IR, accuracy-guarded.

The FP32 ONNX graph is converted to an ``openvino.Model``, quantized by NNCF
on the job's calibration set, scored against FP32 PyTorch on the held-out
images, and -- when the budget is exceeded -- layer groups are put back in
float (:func:`qtseg.calibration.openvino_ptq.keep_float`) until it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtseg.calibration import GuardConfig, run_guard
from qtseg.calibration.methods import CalibrationMethod
from qtseg.calibration.openvino_ptq import count_fake_quantize, keep_float, quantize_openvino
from qtseg.export.int8_context import int8_context
from qtseg.export.job import BuildResult, ExportJob
from qtseg.export.openvino_ir import VERIFIED_PRECISION, openvino_check
from qtseg.export.target import Target

from qtseg.evaluation import Predictor
from qtseg.manifest import INFERENCE_PRECISION

XML, BIN = "model.xml", "model.bin"
PROPERTIES = {INFERENCE_PRECISION: VERIFIED_PRECISION}


def _predictor(model: Any) -> Predictor:
    """An in-memory ``openvino.Model`` on the OpenVINO backend, with the artifact's properties."""
    from qtseg.backends.openvino_backend import OpenVINOBackend

    return OpenVINOBackend(model, device="cpu", precision="int8", properties=PROPERTIES).infer


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Quantize, guard and save ``model.xml``/``model.bin``; parity runs the IR on OpenVINO CPU."""
    import openvino as ov

    from qtseg.backends.openvino_backend import _meta

    ctx = int8_context(job, staging.parent)
    method = CalibrationMethod.parse(ctx.options.calib_method)
    with job.progress.step(f"convert ONNX -> OpenVINO (openvino {ov.get_version().split('-')[0]})"):
        fp32 = ov.convert_model(str(job.graph_file("fp32")))
    with job.progress.step(f"NNCF INT8 quantization on {len(ctx.calib)} calibration images ({method.label})"):
        quantized, info = quantize_openvino(fp32, ctx.calib, method)
    job.progress.info(f"{info['fake_quantize_nodes']} activation quantizers; ranges: {info['range_estimator']}")
    groups = {g.name: g for g in ctx.groups}
    built: dict[tuple[str, ...], Any] = {(): quantized}

    def candidate(kept: tuple[str, ...]) -> Any:
        key = tuple(sorted(kept))
        if key not in built:
            built[key], _ = keep_float(quantized, fp32, [groups[k].pattern for k in key])
        return _predictor(built[key])

    config = GuardConfig(max_dice_drop_pp=ctx.options.max_dice_drop, max_kept=ctx.options.max_kept)
    with job.progress.step(f"accuracy guard (OpenVINO CPU, budget {config.max_dice_drop_pp} pp)"):
        report = run_guard(
            ctx.reference, candidate, ctx.groups if ctx.options.search else [], ctx.held, job.spec,
            config=config, reference_predict=_predictor(fp32), log=job.progress.info,
        )
    job.progress.info(report.summary())
    if not report.passed:
        raise RuntimeError(f"INT8 accuracy guard failed: {report.summary()}")
    candidate(tuple(report.kept_float))
    final = built[tuple(sorted(report.kept_float))]
    for key, value in job.rt_info(target).items():
        final.set_rt_info(value, ["qtseg", key])
    final.set_rt_info(ctx.calib.set_id, ["qtseg", "calibration_set"])
    with job.progress.step("save IR (INT8 weights, FakeQuantize activations)"):
        ov.save_model(final, str(staging / XML), compress_to_fp16=False)
    info["fake_quantize_nodes_final"] = count_fake_quantize(final)
    details: dict[str, Any] = {
        "openvino": {"compress_to_fp16": False, "source_graph": "fp32"},
        "int8": {
            "form": "openvino (NNCF FakeQuantize + INT8 weights)",
            "quantization": info,
            "kept_float": {"groups": report.kept_float, "patterns": [groups[k].pattern for k in report.kept_float]},
            "accuracy_guard": report.to_dict(),
            "options": ctx.options.to_dict(),
        },
    }
    return BuildResult(
        files={"model": XML, "weights": BIN},
        inputs=[_meta(p) for p in final.inputs],
        outputs=[_meta(p) for p in final.outputs],
        checks=[openvino_check(staging / XML, PROPERTIES, target.precision)],
        properties=dict(PROPERTIES),
        details=details,
        calibration=ctx.calibration_summary(method.label, {"nncf": info["range_estimator"]}),
        built=f"OpenVINO INT8 IR written ({report.summary()})",
    )

"""Measurement study behind docs/calibration.md: methods, accuracy, latency.

```
python tools/calibration_study.py --onnx exports/qtseg-v2_onnx/model.onnx \
    --calib calib/kvasir-512 --data ../shared/data/kvasir-seg --splits val,test \
    --methods minmax,entropy,percentile:99.99 [--openvino] [--latency] --out study.json
```

A measurement script (not part of the installed package). For each calibration method: ranges on the calibration set (timed), the QDQ
graph, and its Dice/IoU/mask agreement against FP32 PyTorch on each split;
optionally the same with NNCF/OpenVINO, and model-only latency of FP32 vs
INT8 on the same runtime (fixed thread count, warm-up, fixed iterations).
Imports qtseg core and qtseg.calibration only; the FP32 ONNX graph comes
from ``qtseg-export --target onnx``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]


def ort_session(path: str | Path, threads: int, *, int8_allowed: bool = False) -> Predict:
    """ONNX Runtime CPU predictor with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    if int8_allowed:
        options.add_session_config_entry("session.qdqisint8allowed", "1")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def ov_predictor(model: Any, threads: int) -> Predict:
    """OpenVINO CPU predictor (f32 inference precision, like the backend's default)."""
    import openvino as ov

    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    out = compiled.outputs[0]
    return lambda x: np.array(request.infer({0: x})[out], dtype=np.float32)


def latency(predict: Predict, x: np.ndarray, *, warmup: int = 3, iters: int = 20) -> dict[str, float]:
    """Model-only latency of one input: median, p90, mean in milliseconds."""
    for _ in range(warmup):
        predict(x)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        predict(x)
        times.append(1000.0 * (time.perf_counter() - start))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "mean_ms": float(np.mean(times)), "iters": iters}


def _scores(predict: Predict, held: Any, spec: Any, reference: Any) -> dict[str, Any]:
    from qtseg.calibration import score

    s = score(predict, held, spec, reference)
    return {"dice": s.dice, "iou": s.iou, "agreement": s.agreement,
            "drop_pp": 100.0 * (reference.dice - s.dice), "seconds": round(s.seconds, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the study; returns the results dict (also written to ``--out``)."""
    import torch

    from qtseg.calibration import CalibrationMethod, load_set, score
    from qtseg.calibration.build import split_pool
    from qtseg.calibration.onnx_qdq import QdqSettings, calibrate_ranges, qdq_counts, quantize_qdq
    from qtseg.checkpoint import load_checkpoint
    from qtseg.evaluation import SampleSet, torch_predictor
    from qtseg.provenance import cpu_description

    say = lambda m: print(m, flush=True)  # noqa: E731
    model, spec, info = load_checkpoint(args.checkpoint)
    calib = load_set(args.calib) if args.calib else None
    scratch = tempfile.TemporaryDirectory(prefix="qtseg-study-")
    work = Path(scratch.name)
    results: dict[str, Any] = {
        "checkpoint": str(info.path), "checkpoint_sha256": info.weights_sha256, "calibration_set": calib.summary() if calib else None,
        "cpu": cpu_description(), "threads_eval": args.threads, "torch_threads": torch.get_num_threads(),
        "splits": {}, "onnxruntime": {}, "openvino": {},
    }
    held = {}
    for split in args.splits:
        samples, where = split_pool(Path(args.data), split, split_file=None, seed=0)
        samples = samples[: args.limit] if args.limit else samples
        held[split] = SampleSet.from_samples(samples, spec, source=where)
    refs = {}
    for split, h in held.items():
        refs[split] = score(torch_predictor(model), h, spec)
        results["splits"][split] = {"count": len(h), "fp32_torch": {"dice": refs[split].dice, "iou": refs[split].iou}}
        say(f"FP32 torch {split}: Dice {100 * refs[split].dice:.2f}% IoU {100 * refs[split].iou:.2f}%")
    if args.onnx:
        for split, h in held.items():
            r = _scores(ort_session(args.onnx, args.threads), h, spec, refs[split])
            results["splits"][split]["fp32_onnxruntime"] = r
    results["artifacts"] = {}
    from qtseg.backends import open_backend

    for folder in args.artifacts:
        with open_backend(folder, threads=args.threads) as backend:
            entry = {split: _scores(backend.infer, h, spec, refs[split]) for split, h in held.items()}
        results["artifacts"][folder] = entry
        for split, r in entry.items():
            say(f"{Path(folder).name} {split}: Dice {100 * r['dice']:.2f}% IoU {100 * r['iou']:.2f}% "
                f"(drop {r['drop_pp']:+.3f} pp) agreement {100 * r['agreement']:.3f}%")
        _write(args.out, results)
    qdq_files = {}
    lat: dict[str, Any] = {"threads": args.latency_threads}
    x1 = held[args.splits[0]].x[:1].copy()
    if args.latency and args.onnx:
        lat["ort_fp32"] = latency(ort_session(args.onnx, args.latency_threads), x1)
        results["latency"] = lat
    for label in args.methods:
        method = CalibrationMethod.parse(label)
        table = work / f"ranges-{len(qdq_files)}.json"
        cal = calibrate_ranges(args.onnx, calib, method, table, workdir=work)
        path = work / f"qdq-{len(qdq_files)}.onnx"
        quant = quantize_qdq(args.onnx, path, table, method)
        qdq_files[method.label] = path
        entry: dict[str, Any] = {"calibration_seconds": cal["seconds"], "quantize_seconds": quant["seconds"],
                                 "graph": qdq_counts(path)}
        for split, h in held.items():
            entry[split] = _scores(ort_session(path, args.threads), h, spec, refs[split])
            say(f"ORT {method.label} {split}: Dice {100 * entry[split]['dice']:.2f}% "
                f"(drop {entry[split]['drop_pp']:+.3f} pp) agreement {100 * entry[split]['agreement']:.3f}%")
        results["onnxruntime"][method.label] = entry
        if args.latency:
            t = args.latency_threads
            lat[f"ort_int8[{method.label}]"] = latency(ort_session(path, t), x1)
            lat[f"ort_int8[{method.label}]+qdqisint8allowed"] = latency(ort_session(path, t, int8_allowed=True), x1)
            if args.u8s8 and len(qdq_files) == 1:
                u8 = work / "qdq-u8s8.onnx"
                quantize_qdq(args.onnx, u8, table, method, settings=QdqSettings(activations="uint8"))
                lat[f"ort_u8s8[{method.label}] (not TensorRT form)"] = latency(ort_session(u8, t), x1)
            say("latency: " + ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in lat.items() if isinstance(v, dict)))
        _write(args.out, results)
    ov_models = {}
    if args.openvino:
        import openvino as ov

        from qtseg.calibration.openvino_ptq import quantize_openvino

        fp32 = ov.convert_model(str(args.onnx))
        ov_models["fp32"] = fp32
        for label in args.methods if args.ov_methods is None else args.ov_methods:
            method = CalibrationMethod.parse(label)
            quantized, qinfo = quantize_openvino(fp32, calib, method)
            ov_models[method.label] = quantized
            entry = {"quantize_seconds": qinfo["seconds"], "range_estimator": qinfo["range_estimator"]}
            for split, h in held.items():
                entry[split] = _scores(ov_predictor(quantized, args.threads), h, spec, refs[split])
                say(f"OV {method.label} {split}: Dice {100 * entry[split]['dice']:.2f}% "
                    f"(drop {entry[split]['drop_pp']:+.3f} pp)")
            results["openvino"][method.label] = entry
            if args.save_ov:
                ov.save_model(quantized, str(Path(args.save_ov) / f"int8-{len(ov_models)}.xml"), compress_to_fp16=False)
            _write(args.out, results)
    if args.latency and args.artifacts:
        from int8_latency import artifact_latency  # tools/ sibling

        cases = {Path(f).name: (Path(f), {}) for f in args.artifacts}
        lat["artifacts"] = artifact_latency(cases, x1, args.latency_threads, rounds=6)
        for name, v in lat["artifacts"].items():
            say(f"latency {name}: median {v['median_ms']:.1f} ms (p90 {v['p90_ms']:.1f})")
        results["latency"] = lat
    if args.latency and ov_models:
        for label, m in ov_models.items():
            key = "ov_fp32" if label == "fp32" else f"ov_int8[{label}]"
            lat[key] = latency(ov_predictor(m, args.latency_threads), x1)
        say("latency: " + ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in lat.items() if isinstance(v, dict)))
    _write(args.out, results)
    scratch.cleanup()
    return results


def _write(out: str | None, results: dict[str, Any]) -> None:
    if out:
        Path(out).write_text(json.dumps(results, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python tools/calibration_study.py``."""
    import qtseg

    p = argparse.ArgumentParser(prog="python tools/calibration_study.py", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(qtseg.DEFAULT_CHECKPOINT))
    p.add_argument("--onnx", default=None, help="FP32 graph (qtseg-export --target onnx); needed for --methods")
    p.add_argument("--calib", default=None, help="calibration-set folder (qtseg-calib build); needed for --methods")
    p.add_argument("--artifacts", default="", type=lambda s: [a for a in s.split(",") if a],
                   help="exported artifact folders to score (comma-separated)")
    p.add_argument("--data", required=True, help="dataset folder with splits.json")
    p.add_argument("--splits", default="val", type=lambda s: s.split(","))
    p.add_argument("--limit", type=int, default=0, help="first N images per split (0 = all)")
    p.add_argument("--methods", default="minmax,entropy,percentile:99.99", type=lambda s: [m for m in s.split(",") if m],
                   help="ONNX Runtime methods ('' = none)")
    p.add_argument("--openvino", action="store_true", help="also NNCF/OpenVINO")
    p.add_argument("--ov-methods", default=None, type=lambda s: [m for m in s.split(",") if m],
                   help="NNCF methods (default: --methods)")
    p.add_argument("--save-ov", default=None, help="folder to save the OpenVINO INT8 IRs")
    p.add_argument("--latency", action="store_true")
    p.add_argument("--latency-threads", type=int, default=2)
    p.add_argument("--u8s8", action="store_true", help="also time a uint8-activation variant (ORT x86 form)")
    p.add_argument("--threads", type=int, default=0, help="threads for the accuracy runs (0 = all)")
    p.add_argument("--out", default=None, help="results JSON")
    args = p.parse_args(argv)
    if (args.methods or args.openvino) and not (args.onnx and args.calib):
        p.error("--methods/--openvino need --onnx and --calib")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

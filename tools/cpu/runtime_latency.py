"""Model-only CPU latency of every runtime/precision on this machine, batch 1, interleaved.

```
.venv/bin/python tools/cpu/runtime_latency.py --exports /tmp/prep_exports [--threads 1,2] \
    [--rounds 4] [--per-round 2] [--no-variants]
```

Expects ``<exports>/qtseg-v2_{onnx,onnx-int8,openvino-fp32,openvino-int8}`` (from
``qtseg-export``). Rows: PyTorch eager FP32 (bundled checkpoint,
``torch.set_num_threads``), ONNX Runtime FP32 / INT8 (the artifact's manifest
session config; plus ``session.qdqisint8allowed=1`` and the uint8-asymmetric
QDQ variant built from the INT8 artifact's range table by
``qtseg.bench.int8_latency.build_qdq_variants``), OpenVINO FP32 IR at ``f32``
and ``bf16`` inference precision (and ``f32`` with ``PERFORMANCE_HINT=LATENCY``
+ ``NUM_STREAMS=1`` given explicitly), OpenVINO INT8 IR with ``f32`` and
``bf16`` for its float parts. All rows of one thread count take turns (one
untimed call, then ``--per-round`` timed calls each, ``--rounds`` times) on the
same real preprocessed sample. For OpenVINO rows the kernels the plugin chose
for Convolution/MatMul/FullyConnected are read back from the runtime model
(their names carry the ISA and precision). Writes
``tools/cpu/results/runtime_latency.json``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, load_average, machine, sample_paths, summary, write_results

import qtseg
from qtseg.backends import open_backend
from qtseg.preprocess import PreprocessSpec

COMPUTE_LAYERS = {"Convolution", "GroupConvolution", "Deconvolution", "MatMul", "FullyConnected"}


def ov_kernels(compiled: Any) -> dict[str, int]:
    """``{primitiveType/runtimePrecision: count}`` of the compute layers of a compiled model."""
    counts: collections.Counter[str] = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in COMPUTE_LAYERS:
            counts[f"{info['primitiveType'].astype(str)}/{info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


def _raw_openvino(xml: Path, threads: int, config: dict[str, Any]) -> tuple[Callable[..., Any], Any]:
    """An OpenVINO CPU predictor with an explicit config (knobs the Backend does not expose)."""
    import numpy as np
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {**config, "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    out = compiled.outputs[0]
    return (lambda x: np.array(request.infer({0: x})[out], dtype=np.float32)), compiled


def build_cases(exports: Path, threads: int, variants: list[Path]) -> tuple[dict[str, Any], list[Any]]:
    """Open every row at ``threads`` threads: ``({label: (predict, info)}, opened backends)``."""
    import torch

    torch.set_num_threads(threads)
    opened: list[Any] = []
    cases: dict[str, Any] = {}

    def add(label: str, folder: Path | str, **options: Any) -> None:
        be = open_backend(folder, **options)
        opened.append(be)
        info: dict[str, Any] = {"describe": be.describe()}
        if hasattr(be, "compiled"):
            info["inference_precision"] = str(be.compiled.get_property("INFERENCE_PRECISION_HINT"))
            info["kernels"] = ov_kernels(be.compiled)
        cases[label] = (be.infer, info)

    add("torch eager fp32", qtseg.DEFAULT_CHECKPOINT)
    add("ort fp32", exports / "qtseg-v2_onnx", threads=threads)
    add("ort int8 (artifact: s8 QDQ)", exports / "qtseg-v2_onnx-int8", threads=threads)
    add("ort int8 + qdqisint8allowed=1", exports / "qtseg-v2_onnx-int8", threads=threads,
        session_config={"session.qdqisint8allowed": "1"})
    for folder in variants:
        add(f"ort int8 variant {folder.name.split('_', 1)[1]}", folder, threads=threads)
    add("ov fp32 IR, f32", exports / "qtseg-v2_openvino-fp32", threads=threads,
        inference_precision="f32")
    add("ov fp32 IR, bf16", exports / "qtseg-v2_openvino-fp32", threads=threads,
        inference_precision="bf16")
    predict, compiled = _raw_openvino(
        exports / "qtseg-v2_openvino-fp32" / "model.xml", threads,
        {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1})
    cases["ov fp32 IR, f32, LATENCY + 1 stream (explicit)"] = (
        predict, {"properties": {k: str(compiled.get_property(k)) for k in
                                 ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS")}})
    add("ov int8 IR, f32 rest", exports / "qtseg-v2_openvino-int8", threads=threads,
        inference_precision="f32")
    add("ov int8 IR, bf16 rest", exports / "qtseg-v2_openvino-int8", threads=threads,
        inference_precision="bf16")
    return cases, opened


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exports", type=Path, required=True)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--no-variants", action="store_true", help="skip the ORT QDQ variants")
    parser.add_argument("--out", default="runtime_latency")
    args = parser.parse_args(argv)
    spec = PreprocessSpec.load(args.exports / "qtseg-v2_onnx")
    x = spec.preprocess(sample_paths()[0])
    results: dict[str, Any] = {"machine": machine(), "input": f"{sample_paths()[0].name} {x.shape}",
                               "rounds": args.rounds, "per_round": args.per_round, "runs": {}}
    scratch = tempfile.TemporaryDirectory(prefix="qtseg-cpu-variants-")
    variants: list[Path] = []
    if not args.no_variants:
        from qtseg.bench.int8_latency import build_qdq_variants

        built = build_qdq_variants(args.exports / "qtseg-v2_onnx", args.exports / "qtseg-v2_onnx-int8",
                                   Path(scratch.name))
        variants = [f for f in built if f.name.endswith("u8-asym")]
    for threads in (int(t) for t in args.threads.split(",")):
        cases, opened = build_cases(args.exports, threads, variants)
        load_before = load_average()
        try:
            times = interleaved({k: (lambda f=f: f(x)) for k, (f, _) in cases.items()},
                                rounds=args.rounds, per_round=args.per_round, warmup=2, settle=1)
        finally:
            for be in opened:
                be.close()
        rows = {k: {**summary(times[k]), **info} for k, (_, info) in cases.items()}
        base = {"torch": rows["torch eager fp32"]["p50_ms"], "ort": rows["ort fp32"]["p50_ms"],
                "ov": rows["ov fp32 IR, f32"]["p50_ms"]}
        for k, row in rows.items():
            row["x_torch_eager"] = round(base["torch"] / row["p50_ms"], 3)
            own = base["ort"] if k.startswith("ort") else base["ov"] if k.startswith("ov") else None
            row["x_own_fp32"] = round(own / row["p50_ms"], 3) if own else None
        results["runs"][str(threads)] = {"load_before": load_before, "load_after": load_average(),
                                         "rows": rows}
        print(f"--- {threads} thread(s), load {load_before} -> {load_average()}")
        for k, row in rows.items():
            own = f"{row['x_own_fp32']:.2f}x own fp32" if row["x_own_fp32"] else ""
            print(f"{k:50s} p50 {row['p50_ms']:8.1f} ms  {row['x_torch_eager']:5.2f}x torch  {own}")
        write_results(args.out, results)
    scratch.cleanup()
    print(f"wrote {write_results(args.out, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FP32 vs INT8 model-only CPU latency of exported artifacts, same run, interleaved.

```
python tools/int8_latency.py exports/qtseg-v2_onnx exports/qtseg-v2_onnx-int8 \
    exports/qtseg-v2_openvino-fp32 exports/qtseg-v2_openvino-int8 --threads 1,2 --out int8_latency.json
# also the ORT QDQ variants of docs/calibration.md (built from the INT8 artifact's ranges.json)
python tools/int8_latency.py ... --qdq-variants exports/qtseg-v2_onnx exports/qtseg-v2_onnx-int8
```

A measurement script (not part of the installed package). Every artifact is
opened through ``open_backend`` (its manifest's runtime properties applied) and
timed by :func:`qtseg.timing.interleaved`: warm-up, then all of them take turns
for ``--rounds`` rounds of 4 calls, so a change in background load hits every
row alike. The ratio of each INT8 row is against the FP32 artifact of the
same runtime in the same run. Results: median / p90 per row and thread count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends import open_backend
from qtseg.manifest import Manifest, RuntimeSpec, describe_files, open_artifact, write_manifest
from qtseg.provenance import cpu_description
from qtseg.timing import interleaved

S8S8 = {"session.qdqisint8allowed": "1"}


def build_qdq_variants(fp32_dir: Path, int8_dir: Path, out: Path) -> list[Path]:
    """ORT QDQ graphs from the INT8 artifact's range table and kept-float list, other settings.

    ``int8-full`` (nothing kept in float), ``int8-compute-only`` (only
    Conv/ConvTranspose/Gemm/MatMul inputs quantized) and ``u8-asym`` (uint8
    asymmetric activations: ORT's x86 form, not accepted by TensorRT).
    """
    import onnx

    from qtseg.calibration.methods import CalibrationMethod
    from qtseg.calibration.onnx_qdq import QdqSettings, keep_float, quantize_qdq

    manifest = open_artifact(int8_dir).manifest
    table = int8_dir / manifest.files["ranges"].path
    assert manifest.calibration is not None
    method = CalibrationMethod.parse(manifest.calibration["method"])
    kept = manifest.details["int8"]["kept_float"]["nodes"]
    fp32_path = fp32_dir / "model.onnx"
    fp32 = onnx.load(str(fp32_path))
    variants = {
        "int8-full": (QdqSettings(), []),
        "int8-compute-only": (QdqSettings(op_types=("Conv", "ConvTranspose", "Gemm", "MatMul")), kept),
        "u8-asym": (QdqSettings(activations="uint8"), kept),
    }
    folders = []
    for name, (settings, exclude) in variants.items():
        folder = out / f"{manifest.model.name}_{name}"
        folder.mkdir(parents=True, exist_ok=True)
        full = folder / "full.onnx"
        quantize_qdq(fp32_path, full, table, method, settings=settings)
        model = onnx.load(str(full))
        onnx.save(keep_float(model, fp32, exclude) if exclude else model, str(folder / "model.onnx"))
        full.unlink()
        (folder / "preprocess.json").write_bytes((int8_dir / "preprocess.json").read_bytes())
        roles = {"model": "model.onnx", "preprocess": "preprocess.json"}
        variant = dataclasses.replace(
            manifest, target=name, runtime=RuntimeSpec("onnxruntime"), files=describe_files(folder, roles)
        )
        write_manifest(folder, variant)
        folders.append(folder)
    return folders


def ratios(rows: dict[str, Any], manifests: dict[str, Manifest]) -> dict[str, float]:
    """FP32 median / INT8 median for every INT8 row, against the FP32 row of the same format."""
    fp32 = {m.format: k for k, m in manifests.items() if m.precision == "fp32"}
    return {k: rows[fp32[m.format]]["median_ms"] / rows[k]["median_ms"]
            for k, m in manifests.items() if m.precision == "int8" and m.format in fp32}


def artifact_latency(
    cases: dict[str, tuple[Path, dict[str, Any]]], x: np.ndarray, threads: int, *, rounds: int
) -> dict[str, dict[str, float]]:
    """Median/p90 model-only latency (ms) of each artifact, interleaved rounds of 4 calls."""
    backends = {k: open_backend(folder, threads=threads, **kw) for k, (folder, kw) in cases.items()}
    try:
        times = interleaved({k: (lambda be=be: be.infer(x)) for k, be in backends.items()}, rounds=rounds)
    finally:
        for be in backends.values():
            be.close()
    return {k: {"median_ms": 1000 * float(np.median(v)), "p90_ms": 1000 * float(np.percentile(v, 90)),
                "n": len(v), "threads": threads} for k, v in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python tools/int8_latency.py``."""
    p = argparse.ArgumentParser(prog="python tools/int8_latency.py", description=__doc__.split("\n")[0])
    p.add_argument("artifacts", nargs="+", help="artifact folders (FP32 and INT8 of each runtime)")
    p.add_argument("--threads", default="1,2", type=lambda s: [int(t) for t in s.split(",")])
    p.add_argument("--rounds", type=int, default=5, help="rounds of 4 calls per artifact (default 5)")
    p.add_argument("--qdq-variants", nargs=2, metavar=("FP32_DIR", "INT8_DIR"), default=None,
                   help="also time ORT QDQ variants built from INT8_DIR's ranges.json")
    p.add_argument("--s8s8", action="store_true",
                   help="also time each ONNX INT8 artifact with session.qdqisint8allowed=1")
    p.add_argument("--out", default=None, help="results JSON")
    args = p.parse_args(argv)
    cases: dict[str, tuple[Path, dict[str, Any]]] = {}
    manifests: dict[str, Manifest] = {}
    for folder in map(Path, args.artifacts):
        manifest = open_artifact(folder).manifest
        cases[folder.name], manifests[folder.name] = (folder, {}), manifest
        if args.s8s8 and manifest.format == "onnx" and manifest.precision == "int8":
            cases[f"{folder.name}+s8s8"], manifests[f"{folder.name}+s8s8"] = (folder, {"session_config": S8S8}), manifest
    scratch = tempfile.TemporaryDirectory(prefix="qtseg-int8-latency-")
    if args.qdq_variants:
        for folder in build_qdq_variants(*map(Path, args.qdq_variants), Path(scratch.name)):
            cases[folder.name], manifests[folder.name] = (folder, {}), open_artifact(folder).manifest
    shape = next(iter(manifests.values())).inputs[0].shape
    x = np.random.default_rng(0).random([1, *shape[1:]], dtype=np.float32)
    results: dict[str, Any] = {"cpu": cpu_description(), "runs": {}}
    for threads in args.threads:
        rows = artifact_latency(cases, x, threads, rounds=args.rounds)
        results["runs"][str(threads)] = {"rows": rows, "int8_speedup": ratios(rows, manifests)}
        print(f"{threads} thread(s): " + ", ".join(f"{k} {v['median_ms']:.1f} ms" for k, v in rows.items()), flush=True)
        print("  INT8 speed-up vs FP32: " + ", ".join(
            f"{k} {r:.2f}x" for k, r in results["runs"][str(threads)]["int8_speedup"].items()), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

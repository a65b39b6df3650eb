"""Which kernels ONNX Runtime's CPU provider turns each INT8 QDQ form into (no timing).

```
.venv/bin/python tools/cpu/ort_int8_graph.py /tmp/prep_exports
```

Saves the graph ORT actually executes (``SessionOptions.optimized_model_filepath``,
full optimizations, as the ``Backend`` opens it) for the FP32 graph, the
``onnx-int8`` artifact (int8 symmetric activations), the same with
``session.qdqisint8allowed=1`` and the uint8-asymmetric variant (built from
the artifact's range table), and counts the node types of each: how many
convolutions/matmuls run as fused integer kernels (``QLinearConv``,
``QLinearMatMul``, ``MatMulIntegerToFloat``, ...) and how many quantize /
dequantize nodes stay around float kernels. Writes
``tools/cpu/results/ort_int8_graph.json``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_results


def executed_ops(model: Path, config: dict[str, str], out: Path) -> dict[str, int]:
    """Node-type counts of the graph ORT runs for ``model`` with session ``config``."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.optimized_model_filepath = str(out)
    for key, value in config.items():
        options.add_session_config_entry(key, value)
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(str(out), load_external_data=False).graph
    counts = collections.Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in graph.node)
    return dict(counts.most_common())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", type=Path)
    args = parser.parse_args(argv)
    from qtseg.bench.int8_latency import build_qdq_variants

    results: dict[str, Any] = {"machine": machine(), "graphs": {}}
    with tempfile.TemporaryDirectory(prefix="qtseg-ort-graph-") as tmp:
        work = Path(tmp)
        variants = build_qdq_variants(args.exports / "qtseg-v2_onnx", args.exports / "qtseg-v2_onnx-int8",
                                      work / "variants")
        u8 = next(f for f in variants if f.name.endswith("u8-asym"))
        cases = {
            "fp32": (args.exports / "qtseg-v2_onnx" / "model.onnx", {}),
            "int8 artifact (s8 symmetric activations)": (
                args.exports / "qtseg-v2_onnx-int8" / "model.onnx", {}),
            "int8 artifact + qdqisint8allowed=1": (
                args.exports / "qtseg-v2_onnx-int8" / "model.onnx", {"session.qdqisint8allowed": "1"}),
            "u8 asymmetric activations variant": (u8 / "model.onnx", {}),
        }
        for i, (label, (model, config)) in enumerate(cases.items()):
            ops = executed_ops(model, config, work / f"opt{i}.onnx")
            results["graphs"][label] = ops
            top = ", ".join(f"{k} {v}" for k, v in list(ops.items())[:12])
            print(f"{label}: {sum(ops.values())} nodes: {top}")
    print(f"wrote {write_results('ort_int8_graph', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

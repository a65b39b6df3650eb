"""What the OpenVINO channel-LayerNorm rewrite buys: the same IR with and without it, interleaved.

```
.venv/bin/python tools/cpu/layernorm_rewrite.py EXPORTS/qtseg-v2_onnx [--threads 1] [--rounds 6]
```

Converts the artifact's FP32 ONNX graph to an ``openvino.Model`` twice, as is
and through ``qtseg.export.openvino_passes.channel_layernorm_to_mvn``, compiles
both at ``f32`` and ``bf16`` (where the CPU has it), checks that the two agree,
and times the four in interleaved rounds on a real preprocessed sample.
Writes ``tools/cpu/results/layernorm_rewrite.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import interleaved, load_average, machine, sample_paths, summary, write_results

from qtseg.backends.openvino_backend import OpenVINOBackend, precision_problem
from qtseg.export.openvino_passes import channel_layernorm_to_mvn
from qtseg.preprocess import PreprocessSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx_artifact", type=Path, help="an `onnx` artifact folder (FP32 graph)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    import openvino as ov

    plain = ov.convert_model(str(args.onnx_artifact / "model.onnx"))
    rewritten = plain.clone()
    count = channel_layernorm_to_mvn(rewritten)
    x = PreprocessSpec.load(args.onnx_artifact).preprocess(sample_paths()[0])
    hints = ["f32"] + ([] if precision_problem("bf16") else ["bf16"])
    backends = {f"{hint} {name}": OpenVINOBackend(model, threads=args.threads, properties={
                    "INFERENCE_PRECISION_HINT": hint})
                for hint in hints for name, model in (("as converted", plain), ("rewritten", rewritten))}
    outputs = {k: be.infer(x) for k, be in backends.items()}
    load_before = load_average()
    times = interleaved({k: (lambda be=be: be.infer(x)) for k, be in backends.items()},
                        rounds=args.rounds, per_round=2, warmup=2, settle=1)
    results: dict[str, Any] = {"machine": machine(), "rewritten_layernorms": count, "threads": args.threads,
                               "load_before": load_before, "load_after": load_average(), "rows": {}}
    for k, durations in times.items():
        results["rows"][k] = summary(durations)
    for hint in hints:
        before, after = results["rows"][f"{hint} as converted"], results["rows"][f"{hint} rewritten"]
        diff = float(np.abs(outputs[f"{hint} as converted"] - outputs[f"{hint} rewritten"]).max())
        results[f"{hint}_speedup"] = before["p50_ms"] / after["p50_ms"]
        results[f"{hint}_max_abs_diff"] = diff
        print(f"{hint}: {before['p50_ms']:.1f} -> {after['p50_ms']:.1f} ms "
              f"({results[f'{hint}_speedup']:.2f}x), max |diff| {diff:.3g}")
    print(f"{count} LayerNorms rewritten; load {results['load_before']} -> {results['load_after']}")
    print(f"wrote {write_results('layernorm_rewrite', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""OpenVINO latency with the CPU plugin capped to lower instruction sets (``OV_CPU_MAX_ISA``).

```
.venv/bin/python tools/cpu/isa_ablation.py /tmp/prep_exports [--rounds 3] [--threads 1]
```

``OV_CPU_MAX_ISA=AVX512_CORE`` makes the plugin behave as on an AVX-512 CPU
without VNNI and BF16 (the default inference precision falls back to f32 and
INT8 convolutions leave the VNNI ``brgconv`` kernels); ``AVX2`` as on an
AVX2-only CPU. Each (ISA cap, artifact) runs in its own child process
(the cap is read at plugin load), the caps alternate for ``--rounds`` rounds,
each child times ``--iters`` calls after 2 warm-up calls with the plugin's
default precision. Writes ``tools/cpu/results/isa_ablation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, machine, sample_paths, write_results

CHILD = """
import json, sys, time
import numpy as np, openvino as ov
sys.path.insert(0, {tools!r})
from runtime_latency import ov_kernels
from qtseg.preprocess import PreprocessSpec
xml, threads, iters, image = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
x = PreprocessSpec().preprocess(image)
compiled = ov.Core().compile_model(xml, "CPU", {{"INFERENCE_NUM_THREADS": threads}})
request = compiled.create_infer_request()
for _ in range(2):
    request.infer({{0: x}})
times = []
for _ in range(iters):
    start = time.perf_counter()
    request.infer({{0: x}})
    times.append(1000 * (time.perf_counter() - start))
print(json.dumps({{"ms": times, "precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
                  "kernels": ov_kernels(compiled)}}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("exports", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    code = CHILD.format(tools=str(Path(__file__).resolve().parent))
    artifacts = {"openvino-fp32 IR": args.exports / "qtseg-v2_openvino-fp32" / "model.xml",
                 "openvino-int8 IR": args.exports / "qtseg-v2_openvino-int8" / "model.xml"}
    caps = ("ALL", "AVX512_CORE", "AVX2")
    runs: dict[str, dict[str, Any]] = {}
    load_before = load_average()
    for _ in range(args.rounds):
        for cap in caps:
            for label, xml in artifacts.items():
                env = dict(os.environ, OV_CPU_MAX_ISA=cap)
                out = subprocess.run([sys.executable, "-c", code, str(xml), str(args.threads),
                                      str(args.iters), str(sample_paths()[0])],
                                     capture_output=True, text=True, check=True, env=env).stdout
                child = json.loads(out.strip().splitlines()[-1])
                entry = runs.setdefault(f"{label} @ {cap}", {"ms": [], "precision": child["precision"],
                                                             "kernels": child["kernels"]})
                entry["ms"] += child["ms"]
    for key, entry in runs.items():
        entry["p50_ms"] = round(float(np.median(entry["ms"])), 2)
        print(f"{key:32s} p50 {entry['p50_ms']:8.1f} ms  precision {entry['precision']}")
    results = {"machine": machine(), "threads": args.threads, "load_before": load_before,
               "load_after": load_average(), "runs": runs}
    print(f"load {load_before} -> {results['load_after']}")
    print(f"wrote {write_results('isa_ablation', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

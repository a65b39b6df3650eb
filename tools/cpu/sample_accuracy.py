"""Accuracy of every row of runtime_latency.py on the 12 bundled samples vs PyTorch FP32.

```
.venv/bin/python tools/cpu/sample_accuracy.py --exports /tmp/prep_exports [--threads 2]
```

Opens the same rows as ``runtime_latency.py`` (same options) and scores each
with the export parity gate's comparison (``qtseg.export.parity.compare_logits``):
arg-max agreement at model resolution, max |logit diff|, and mean Dice against
the ground-truth masks at the original size, as a change against PyTorch FP32
in percentage points (issue 15's goal allows <= 0.5 pp). Writes
``tools/cpu/results/sample_accuracy.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SAMPLES, load_average, machine, write_results
from qtseg.export.parity import compare_logits, load_samples
from runtime_latency import build_cases

from qtseg.preprocess import PreprocessSpec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exports", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from qtseg.bench.int8_latency import build_qdq_variants

    spec = PreprocessSpec.load(args.exports / "qtseg-v2_onnx")
    samples = load_samples(SAMPLES, spec, limit=0)
    results: dict[str, Any] = {"machine": machine(), "load_before": load_average(), "rows": {}}
    with tempfile.TemporaryDirectory(prefix="qtseg-cpu-variants-") as tmp:
        built = build_qdq_variants(args.exports / "qtseg-v2_onnx", args.exports / "qtseg-v2_onnx-int8",
                                   Path(tmp))
        cases, opened = build_cases(args.exports, args.threads,
                                    [f for f in built if f.name.endswith("u8-asym")])
        try:
            logits = {k: [predict(samples.x[i : i + 1]) for i in range(len(samples.names))]
                      for k, (predict, _) in cases.items()}
        finally:
            for be in opened:
                be.close()
    reference = logits["torch eager fp32"]
    for label, cand in logits.items():
        r = compare_logits(reference, cand, samples, spec, precision="fp32", label=label)
        results["rows"][label] = {"agreement": r.agreement, "max_abs_diff": r.max_abs_diff,
                                  "dice": r.dice_candidate, "dice_torch": r.dice_reference,
                                  "dice_delta_pp": r.dice_delta_pp}
        print(f"{label:50s} agreement {100 * r.agreement:8.4f}%  max|d| {r.max_abs_diff:8.3g}  "
              f"Dice {100 * r.dice_candidate:6.2f}% ({r.dice_delta_pp:+.3f} pp)")
    results["load_after"] = load_average()
    results["images"] = len(samples.names)
    print(f"wrote {write_results('sample_accuracy', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

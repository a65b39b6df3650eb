"""What OpenVINO's CPU plugin runs an FP32 IR at by default, and what that costs in accuracy.

```
.venv/bin/python tools/cpu/ov_precision.py /tmp/prep_exports/qtseg-v2_openvino-fp32 [--threads 2]
```

Compiles the IR with no hint (what ``compile_model(xml, "CPU")`` and a plain
``benchmark_app`` get), reads the properties back, then compares the no-hint,
``f32`` and ``bf16`` runs with PyTorch FP32 (the bundled checkpoint) on the 12
bundled samples with the export parity gate's own comparison
(``qtseg.export.parity``: max |logit diff|, arg-max agreement at model
resolution, Dice against the ground truth) plus mask agreement at the
original image size. Writes ``tools/cpu/results/ov_precision.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SAMPLES, load_average, machine, write_results
from qtseg.export.parity import compare_logits, load_samples, run_logits

import qtseg
from qtseg.backends import open_backend
from qtseg.metrics import mask_agreement
from qtseg.preprocess import PreprocessSpec

PROPERTIES = ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "NUM_STREAMS",
              "INFERENCE_NUM_THREADS", "EXECUTION_MODE_HINT", "ENABLE_CPU_PINNING")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("artifact", help="an openvino-fp32 artifact folder")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import openvino as ov

    spec = PreprocessSpec.load(args.artifact)
    samples = load_samples(SAMPLES, spec, limit=0)
    with open_backend(qtseg.DEFAULT_CHECKPOINT) as torch_backend:
        reference = run_logits(torch_backend, samples)
    results: dict[str, Any] = {
        "machine": machine(),
        "capabilities": ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
        "load_before": load_average(),
        "runs": {},
    }
    for label, hint in (("no hint", None), ("f32", "f32"), ("bf16", "bf16")):
        with open_backend(args.artifact, threads=args.threads, inference_precision=hint) as be:
            props = {k: str(be.compiled.get_property(k)) for k in PROPERTIES}
            logits = run_logits(be, samples)
        parity = compare_logits(reference, logits, samples, spec, precision="fp32", label=label)
        total = sum(img.shape[0] * img.shape[1] for img in samples.images)
        differing = sum(
            round((1 - mask_agreement(spec.postprocess(r, img.shape[:2]),
                                      spec.postprocess(c, img.shape[:2]))) * img.shape[0] * img.shape[1])
            for r, c, img in zip(reference, logits, samples.images)
        )
        agree_pixels = 1 - differing / total
        results["runs"][label] = {
            "compiled_properties": props,
            "max_abs_diff": parity.max_abs_diff,
            "mean_abs_diff": parity.mean_abs_diff,
            "agreement_model_res_mean_over_images": parity.agreement,
            "agreement_original_size_pooled": agree_pixels,
            "dice_torch": parity.dice_reference,
            "dice": parity.dice_candidate,
            "dice_delta_pp": parity.dice_delta_pp,
            "passes_fp32_gate": parity.passed,
            "fp32_gate_failures": parity.failures,
            "differing_pixels_original_size": differing,
        }
        r = results["runs"][label]
        print(f"{label:8s} precision {props['INFERENCE_PRECISION_HINT']:10s} "
              f"max|d| {r['max_abs_diff']:.3g}  agreement {100 * r['agreement_model_res_mean_over_images']:.4f}% "
              f"(orig size {100 * agree_pixels:.4f}%, {r['differing_pixels_original_size']} px)  "
              f"Dice {100 * r['dice']:.3f}% (delta {r['dice_delta_pp']:+.3f} pp)  fp32 gate "
              f"{'pass' if parity.passed else 'FAIL'}")
    results["load_after"] = load_average()
    results["images"] = len(samples.names)
    print(f"load {results['load_before']} -> {results['load_after']}")
    print(f"wrote {write_results('ov_precision', results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

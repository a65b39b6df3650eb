"""C++ ``qtseg_infer`` logits vs the Python aoti backend on the same input tensor (issue 16).

    python tools/gpu/cpp_parity.py ARTIFACT INPUT.f32 CPP_LOGITS.f32 [MORE.f32 ...]

INPUT is ``qtseg_infer --dump-input`` (1, 3, H, W); each logits file is a
``--dump-logits`` of the same run. Prints max |diff| and arg-max agreement, and
whether max |diff| is within :data:`TOLERANCE` (the same package runs the same
kernels in both; the FP32 gate's logit limit is used as the bound).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

TOLERANCE = 1e-3


def main(argv: list[str]) -> int:
    """Entry point."""
    from qtseg.backends import open_backend

    artifact, x_file, *logit_files = argv
    with open_backend(Path(artifact), device="cuda") as be:
        h, w = be.input_metadata()[0].shape[2:]
        x = np.fromfile(x_file, dtype="<f4").reshape(1, 3, h, w)
        want = be.infer(x)
    for name in logit_files:
        if not Path(name).is_file():
            print(f"cpp vs python aoti ({Path(name).name}): no such file (that C++ run failed)")
            continue
        got = np.fromfile(name, dtype="<f4").reshape(want.shape)
        diff = float(np.abs(got - want).max())
        agree = float((got.argmax(1) == want.argmax(1)).mean())
        verdict = "PASS" if diff <= TOLERANCE else "FAIL"
        print(
            f"cpp vs python aoti ({Path(name).name}): {verdict} max|diff| {diff:.3g} "
            f"(tolerance {TOLERANCE:g}), argmax agreement {agree:.6%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

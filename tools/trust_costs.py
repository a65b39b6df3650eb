"""What the load- and run-time checks of issue #12 cost: SHA-256 of artifact-sized files, the NaN/Inf checks.

Usage::

    OMP_NUM_THREADS=1 python tools/trust_costs.py --artifact exports/qtseg-v2_onnx \
        --json docs/measurements/trust_costs.json

Interleaved rounds (one of each measurement per round), medians reported;
files are hashed from the page cache (read once before timing), so the
numbers are the CPU cost of hashing, not of the disk. The NaN/Inf checks are
timed on a ``(1, 3, 512, 512)`` input and a ``(1, 2, 512, 512)`` output and
compared with one ONNX Runtime inference of the artifact (1 thread). The
hash is also timed in process CPU time, which a busy shared machine inflates
less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qtseg.backends import open_backend
from qtseg.backends.base import all_finite
from qtseg.provenance import cpu_description, file_sha256, package_versions


def _timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", required=True, help="a qtseg-v2 512x512 ONNX artifact folder")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="trust-costs-"))
    rng = np.random.default_rng(0)
    files = {"model.onnx (artifact)": Path(args.artifact) / "model.onnx"}
    for name, mb in (("random 37 MB", 37), ("random 45 MB (engine-sized)", 45)):
        path = scratch / f"{mb}.bin"
        path.write_bytes(rng.bytes(mb * 1_000_000))
        files[name] = path
    for path in files.values():
        file_sha256(path)  # into the page cache
    x = rng.random((1, 3, 512, 512), dtype=np.float32)
    y = rng.standard_normal((1, 2, 512, 512)).astype(np.float32)
    backend = open_backend(args.artifact, threads=1, verify_hashes=False)
    backend.infer(x)
    times: dict[str, list[float]] = {k: [] for k in [*files, "finite input", "finite output", "ort infer"]}
    cpu: dict[str, list[float]] = {k: [] for k in files}
    for _ in range(args.rounds):
        for name, path in files.items():
            times[name].append(_timed(lambda p=path: file_sha256(p)))
            cpu[name].append(_timed(lambda p=path: file_sha256(p), time.process_time))
        times["finite input"].append(_timed(lambda: [all_finite(x) for _ in range(100)]) / 100)
        times["finite output"].append(_timed(lambda: [all_finite(y) for _ in range(100)]) / 100)
        times["ort infer"].append(_timed(lambda: backend.infer(x)))
    result = {
        "command": "OMP_NUM_THREADS=1 python tools/trust_costs.py --artifact ARTIFACT",
        "cpu": cpu_description(),
        "load_average": os.getloadavg(),
        "versions": package_versions(("numpy", "onnxruntime")),
        "median_ms": {k: round(1e3 * statistics.median(v), 3) for k, v in times.items()},
        "median_cpu_ms": {k: round(1e3 * statistics.median(v), 3) for k, v in cpu.items()},
        "sizes_mb": {k: round(p.stat().st_size / 1e6, 1) for k, p in files.items()},
    }
    result["sha256_mb_per_s"] = {
        k: round(result["sizes_mb"][k] / (result["median_ms"][k] / 1e3)) for k in files
    }
    result["sha256_mb_per_cpu_s"] = {
        k: round(result["sizes_mb"][k] / (result["median_cpu_ms"][k] / 1e3)) for k in files
    }
    checks = result["median_ms"]["finite input"] + result["median_ms"]["finite output"]
    result["finite_checks_share_of_infer"] = round(checks / result["median_ms"]["ort infer"], 5)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    for path in files.values():
        if path.parent == scratch:
            path.unlink()
    scratch.rmdir()


if __name__ == "__main__":
    main()

"""Where an OpenVINO artifact spends its time on this CPU: per-layer ``PERF_COUNT`` profile.

```
python tools/cpu/ov_layer_profile.py ARTIFACT [ARTIFACT ...] [--threads 1,2] [--iters 20] [--out NAME]
```

Each artifact is compiled with its manifest's runtime properties (so the
inference precision it was verified at) plus ``PERF_COUNT=YES``, then runs
``--iters`` inferences on one real preprocessed sample. Per thread count it
reports the wall time per inference, the summed layer time, and the layer
time grouped by layer type, by model part (the first three segments of the
ONNX node name, e.g. ``/model/decoder/upsample.0``) and the 25 slowest
layers with the kernel (``exec_type``) that ran them. Writes
``tools/cpu/results/<NAME>.json`` (default ``ov_layer_profile``) with the CPU
description and versions.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, machine, sample_paths, write_results

from qtseg.backends.openvino_backend import OpenVINOBackend
from qtseg.manifest import open_artifact
from qtseg.preprocess import PreprocessSpec


def _part(name: str) -> str:
    """``/model/decoder/upsample.0/...`` -> ``/model/decoder/upsample.0``; plugin-made names as they are."""
    return "/".join(name.split("/")[:4]) if name.startswith("/") else name


def profile(folder: Path, threads: int, iters: int) -> dict[str, Any]:
    """Per-layer profile of one artifact at one thread count (see the module docstring)."""
    art = open_artifact(folder)
    manifest = art.manifest
    properties = {**manifest.runtime.properties, "PERF_COUNT": "YES"}
    backend = OpenVINOBackend(art.path("model"), precision=manifest.precision,
                              properties=properties, threads=threads)
    spec = PreprocessSpec.load(folder)
    x = spec.preprocess(sample_paths()[0])
    request = backend.compiled.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    by_type: Counter[str] = Counter()
    by_part: Counter[str] = Counter()
    by_layer: Counter[tuple[str, str, str]] = Counter()
    walls = []
    for _ in range(iters):
        start = time.perf_counter()
        request.infer({0: x})
        walls.append(time.perf_counter() - start)
        for info in request.profiling_info:
            us = info.real_time.total_seconds() * 1e6
            by_type[info.node_type] += us
            by_part[_part(info.node_name)] += us
            by_layer[(info.node_name, info.node_type, info.exec_type)] += us
    total_ms = sum(by_type.values()) / iters / 1000
    walls.sort()

    def rows(counter: Counter, n: int) -> list[dict[str, Any]]:
        return [{"what": key if isinstance(key, str) else list(key),
                 "ms": round(us / iters / 1000, 3), "share": round(us / iters / 1000 / total_ms, 4)}
                for key, us in counter.most_common(n)]

    return {
        "artifact": folder.name, "threads": threads, "iters": iters,
        "precision": backend.compiled_property("INFERENCE_PRECISION_HINT"),
        "wall_p50_ms": round(1000 * walls[len(walls) // 2], 3), "layers_ms": round(total_ms, 3),
        "by_type": rows(by_type, 20), "by_part": rows(by_part, 25), "slowest": rows(by_layer, 25),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="tools/cpu/ov_layer_profile.py", description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--out", default="ov_layer_profile")
    args = p.parse_args(argv)
    before = load_average()
    results = []
    for folder in args.artifacts:
        for threads in (int(t) for t in args.threads.split(",")):
            r = profile(folder, threads, args.iters)
            results.append(r)
            print(f"\n## {r['artifact']} at {r['precision']}, {threads} thread(s): wall p50 "
                  f"{r['wall_p50_ms']} ms, layers {r['layers_ms']} ms")
            for title in ("by_type", "by_part", "slowest"):
                print(f"-- {title}")
                for row in r[title][:12 if title != "slowest" else 15]:
                    what = row["what"] if isinstance(row["what"], str) else " | ".join(row["what"][::-1])
                    print(f"{row['ms']:8.2f} ms {100 * row['share']:5.1f} %  {what[:110]}")
    path = write_results(args.out, {"machine": machine(), "load_before": before,
                                    "load_after": load_average(), "profiles": results})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

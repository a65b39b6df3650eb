"""Pre/post-processing latency: before vs after the speed-up, model-only vs end to end, C++.

```
.venv/bin/python tools/cpu/prepost_latency.py [--before 2522c56] [--rounds 8] \
    [--artifact /tmp/prep_exports/qtseg-v2_openvino-int8] \
    [--artifact /tmp/prep_exports/qtseg-v2_openvino-fp32:inference_precision=bf16] \
    [--cpp-cli build/cpp/qtseg_infer --cpp-artifact /tmp/prep_exports/qtseg-v2_openvino-fp32]
```

1. Python pre/postprocessing of the 12 bundled samples (decoded once, as in
   ``qtseg-bench``'s end-to-end row), ``qtseg/preprocess.py`` at ``--before``
   (read with ``git show``) against the working tree, interleaved; outputs are
   checked to be bit-identical first. Per-image ms; "2 workers" splits the 12
   images over two Python threads (throughput per image; numpy releases the GIL).
2. For each ``--artifact`` (``DIR[:key=value,...]``, options go to
   ``open_backend``) at 1 and 2 runtime threads: model-only ``infer`` against
   preprocess + infer + postprocess, interleaved, and their ratio.
3. With ``--cpp-cli``: ``qtseg_infer --bench`` per image at 1 and 2 threads
   (its preprocess / infer / postprocess / end-to-end rows, p50).

Writes ``tools/cpu/results/prepost_latency.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    interleaved,
    load_average,
    machine,
    sample_paths,
    summary,
    write_results,
)

from qtseg.imageio import read_image
from qtseg.preprocess import PreprocessSpec


def _module_at(rev: str, scratch: Path) -> Any:
    """``qtseg/preprocess.py`` as of git revision ``rev``, imported under another name."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:qtseg/preprocess.py"],
                            capture_output=True, text=True, check=True).stdout
    path = scratch / "preprocess_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("preprocess_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _two_workers(fn: Callable[[int], object], count: int) -> Callable[[], None]:
    """A call that runs ``fn(i)`` for ``i < count`` split over two threads."""
    def run() -> None:
        threads = [threading.Thread(target=lambda k=k: [fn(i) for i in range(k, count, 2)])
                   for k in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return run


def python_prepost(before_rev: str, rounds: int) -> dict[str, Any]:
    """Per-image pre/postprocess ms, before vs after, same run, interleaved."""
    images = [read_image(p) for p in sample_paths()]
    rng = np.random.default_rng(0)
    logits = [rng.standard_normal((2, 512, 512)).astype(np.float32) for _ in images]
    with tempfile.TemporaryDirectory() as tmp:
        old = _module_at(before_rev, Path(tmp)).PreprocessSpec()
    new = PreprocessSpec()
    n = len(images)
    for img, lg in zip(images, logits):
        assert old.preprocess_one(img).tobytes() == new.preprocess_one(img).tobytes()
        assert np.array_equal(old.postprocess(lg, img.shape[:2]), new.postprocess(lg, img.shape[:2]))

    def pre(spec: PreprocessSpec) -> Callable[[int], object]:
        return lambda i: spec.preprocess_one(images[i])

    def post(spec: PreprocessSpec) -> Callable[[int], object]:
        return lambda i: spec.postprocess(logits[i], images[i].shape[:2])

    cases: dict[str, Callable[[], object]] = {}
    for label, spec in (("before", old), ("after", new)):
        for stage, make in (("preprocess", pre), ("postprocess", post)):
            fn = make(spec)
            cases[f"{stage} {label}"] = lambda fn=fn: [fn(i) for i in range(n)]
            cases[f"{stage} {label}, 2 workers"] = _two_workers(fn, n)
    load_before = load_average()
    times = interleaved(cases, rounds=rounds, per_round=1, warmup=1)
    return {"images": n, "load_before": load_before, "load_after": load_average(),
            "per_image": {k: summary(v, divide=n) for k, v in times.items()}}


def _parse_artifact(text: str) -> tuple[str, dict[str, Any]]:
    folder, _, opts = text.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else value
    return folder, options


def model_vs_e2e(artifact: str, threads: int, rounds: int) -> dict[str, Any]:
    """Model-only vs end-to-end per image for one artifact at ``threads`` runtime threads."""
    import torch

    from qtseg.backends import open_backend

    folder, options = _parse_artifact(artifact)
    torch.set_num_threads(threads)
    images = [read_image(p) for p in sample_paths()]
    spec = PreprocessSpec.load(folder)
    xs = [spec.preprocess(img) for img in images]
    n = len(images)
    with open_backend(folder, threads=threads, **options) as backend:
        def model() -> None:
            for x in xs:
                backend.infer(x)

        def e2e() -> None:
            for img in images:
                spec.postprocess(backend.infer(spec.preprocess(img))[0], img.shape[:2])

        load_before = load_average()
        times = interleaved({"model": model, "e2e": e2e}, rounds=rounds, per_round=1, warmup=1)
        described = backend.describe()
    model_s, e2e_s = summary(times["model"], n), summary(times["e2e"], n)
    return {"artifact": artifact, "threads": threads, "backend": described,
            "load_before": load_before, "load_after": load_average(),
            "model": model_s, "e2e": e2e_s,
            "e2e_over_model_p50": round(e2e_s["p50_ms"] / model_s["p50_ms"], 4),
            "paired_ratios_p50": round(float(np.median(np.array(times["e2e"]) / np.array(times["model"]))), 4)}


def cpp_stages(cli: str, artifact: str, threads: int, iters: int) -> dict[str, Any]:
    """``qtseg_infer --bench`` per sample image: p50 ms of each stage, median over images."""
    rows: dict[str, list[float]] = {}
    load_before = load_average()
    for path in sample_paths():
        out = subprocess.run([cli, "--artifact", artifact, "--input", str(path), "--bench", str(iters),
                              "--warmup", "2", "--threads", str(threads)],
                             capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] in ("preprocess", "infer", "postprocess", "end-to-end"):
                rows.setdefault(parts[0], []).append(float(parts[2]))  # p50 column
    result = {stage: round(float(np.median(v)), 3) for stage, v in rows.items()}
    return {"artifact": artifact, "threads": threads, "iters_per_image": iters,
            "median_over_images_of_p50_ms": result,
            "e2e_over_infer": round(result["end-to-end"] / result["infer"], 4),
            "load_before": load_before, "load_after": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default="2522c56", help="git revision of the old preprocess.py")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--artifact", action="append", default=[], help="DIR[:key=value,...]")
    parser.add_argument("--e2e-rounds", type=int, default=4)
    parser.add_argument("--cpp-cli", default=None)
    parser.add_argument("--cpp-artifact", default=None)
    parser.add_argument("--cpp-iters", type=int, default=5)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--skip-python", action="store_true")
    parser.add_argument("--out", default="prepost_latency")
    args = parser.parse_args(argv)
    thread_counts = [int(t) for t in args.threads.split(",")]
    results: dict[str, Any] = {"machine": machine()}
    if not args.skip_python:
        results["python_prepost"] = py = python_prepost(args.before, args.rounds)
        for name, s in py["per_image"].items():
            print(f"{name:32s} p50 {s['p50_ms']:8.2f} ms  min {s['min_ms']:8.2f} ms")
        print(f"load {py['load_before']} -> {py['load_after']}")
    results["model_vs_e2e"] = []
    for artifact in args.artifact:
        for t in thread_counts:
            r = model_vs_e2e(artifact, t, args.e2e_rounds)
            results["model_vs_e2e"].append(r)
            print(f"{artifact} threads {t}: model p50 {r['model']['p50_ms']:.1f} ms, "
                  f"e2e p50 {r['e2e']['p50_ms']:.1f} ms, ratio {r['e2e_over_model_p50']:.3f} "
                  f"(paired {r['paired_ratios_p50']:.3f}); load {r['load_before']} -> {r['load_after']}")
    if args.cpp_cli:
        results["cpp"] = []
        for t in thread_counts:
            r = cpp_stages(args.cpp_cli, args.cpp_artifact, t, args.cpp_iters)
            results["cpp"].append(r)
            print(f"C++ threads {t}: {r['median_over_images_of_p50_ms']} e2e/infer "
                  f"{r['e2e_over_infer']:.3f}; load {r['load_before']} -> {r['load_after']}")
    print(f"wrote {write_results(args.out, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The GPU fast paths against plain PyTorch in one run (issue 16), on the bundled checkpoint.

    python tools/gpu/fast_gpu.py --out DIR [--aoti-export] [--rows a,b,...] [--batch 128,256]
        [--profile] [--inductor KEY=VALUE,...]

Rows (all in one process, timed in interleaved rounds so ratios are comparable):

* ``eager-fp32`` / ``eager-amp``: the model as loaded, eager, FP32 and
  ``torch.autocast(float16)`` -- what a user of the authors' code runs;
* ``compile-fp16``: FP16 weights, BatchNorm folded, NHWC, ``torch.compile``,
  CUDA graph (the previous best path);
* ``fast-fp16``: the same with attention as plain matrix products and TF32 for
  the FP32 channel-attention products (:data:`qtseg.backends.torch_backend.FAST_GPU`);
* ``fast-fp16-ieee``: ``fast-fp16`` with those products in IEEE FP32 (no TF32);
* ``aoti-fp16`` / ``aoti-fp16-graph``: the embeddable ``aoti-cuda-fp16``
  package (exported by this run with ``--aoti-export``, dynamic batch
  1..``--batch``, in a child process while the other rows compile), without
  and with CUDA-graph replay.

Latency: CUDA events around one call on an idle GPU (``qtseg.timing``),
inputs rotated among real preprocessed images; median over all rounds; batch 1
and every ``--batch`` size. ``--profile`` adds, per row and batch, the CUDA
kernels of 20 timed calls (profiler, CUPTI): their summed device time per call
against the wall time per call (the difference is launch gaps and idle device),
and the 12 kernels that take most time. ``--inductor`` sets
``torch._inductor.config`` keys for the whole run (e.g. ``max_autotune=True``).
Parity: the export gate's comparison (``qtseg.evaluation.check_parity``) against
PyTorch FP32 on the CPU, on every bundled sample. Writes ``DIR/fast_gpu.json``
and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXPORT_SNIPPET = (
    "from qtseg.export.aoti import export_aoti; "
    "o = export_aoti(None, device='cuda', precision='fp16', dynamic_batch={batch}, "
    "out='{out}', num_samples=0); print('export', o.status, o.path, flush=True)"
)


def _rows(names: list[str]) -> dict[str, Any]:
    from qtseg.backends.torch_backend import FAST_GPU, TorchOptions

    compile16 = TorchOptions(
        precision="fp16", autocast=False, fold_bn=True, channels_last=True,
        compile="default", cuda_graph=True,
    )
    table = {
        "eager-fp32": TorchOptions(),
        "eager-amp": TorchOptions(precision="fp16"),
        "compile-fp16": compile16,
        "fast-fp16": FAST_GPU,
        "fast-fp16-ieee": TorchOptions(**{**FAST_GPU.to_dict(), "tf32": False}),
    }
    return {n: table[n] for n in names if n in table}


def _kernel_profile(fn: Any, calls: int = 20) -> dict[str, Any]:
    """Summed kernel time per call, wall time per call, and the top kernels, over ``calls`` calls."""
    from collections import Counter

    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
        wall = (time.perf_counter() - start) / calls
    by_name: Counter[str] = Counter()
    count = 0
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            by_name[e.name] += e.device_time_total
            count += 1
    total_us = sum(by_name.values()) / calls
    return {
        "wall_ms_per_call": 1000 * wall,
        "kernel_ms_per_call": total_us / 1000,
        "kernels_per_call": count / calls,
        "top": [{"name": n[:120], "ms_per_call": us / calls / 1000} for n, us in by_name.most_common(12)],
    }


def _set_inductor(pairs: str) -> dict[str, Any]:
    """``key=value,...`` -> the ``torch._inductor.config`` settings made (values: JSON, else str)."""
    import torch._inductor.config as cfg

    made: dict[str, Any] = {}
    for pair in filter(None, pairs.split(",")):
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw.lower() if raw in ("True", "False") else raw)
        except json.JSONDecodeError:
            value = raw
        obj = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            obj = getattr(obj, part)
        setattr(obj, leaf, value)
        made[key] = value
    return made


def main(argv: list[str] | None = None) -> int:
    """Entry point (see the module docstring)."""
    p = argparse.ArgumentParser(prog="tools/gpu/fast_gpu.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", default="eager-fp32,eager-amp,compile-fp16,fast-fp16,aoti-fp16,aoti-fp16-graph")
    p.add_argument("--batch", default="128", help="large batch size(s), comma-separated (default 128)")
    p.add_argument("--iters", type=int, default=300, help="batch-1 calls per row (all rounds)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--aoti-export", action="store_true", help="export aoti-cuda-fp16 in this run")
    p.add_argument("--aoti", default=None, help="an existing aoti-cuda-fp16 artifact folder")
    p.add_argument("--wait-pid", type=int, default=0, help="let this process end before timing")
    p.add_argument("--profile", action="store_true", help="kernel profile per row and batch")
    p.add_argument("--inductor", default="", help="torch._inductor.config settings, key=value,...")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batch.split(",")]
    big = max(batches)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU", file=sys.stderr)
        return 2
    import qtseg
    from qtseg.backends import open_backend
    from qtseg.backends.torch_backend import TorchBackend
    from qtseg.evaluation import SampleSet, check_parity, infer_logits
    from qtseg.timing import time_cuda

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.rows.split(",")
    export = None
    if args.aoti_export and any(n.startswith("aoti") for n in names):
        code = EXPORT_SNIPPET.format(batch=big, out=out / "exports")
        log = (out / "aoti_export.log").open("w")
        export = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    torch.backends.cudnn.benchmark = True
    inductor = _set_inductor(args.inductor)
    ckpt = qtseg.DEFAULT_CHECKPOINT
    _, spec = qtseg.load(None, device="cpu")
    samples = SampleSet.from_folder(qtseg.SAMPLES_DIR / "images", spec, limit=0, keep_images=False)
    with TorchBackend(ckpt) as cpu_ref:
        ref_logits = infer_logits(cpu_ref, samples.x)
    x_all = torch.from_numpy(samples.x).cuda()
    inputs = {1: [x_all[i : i + 1] for i in range(4)]}
    for b in batches:
        idx = torch.arange(b * 4) % len(x_all)
        inputs[b] = [x_all[idx[i * b : (i + 1) * b]] for i in range(4)]
    backends: dict[str, Any] = {}
    info: dict[str, dict] = {}

    def prepare(name: str, make: Any) -> None:
        start = time.perf_counter()
        try:
            be = make()
            for b in inputs:
                be.run_device(inputs[b][0])  # compile / capture for this shape
            torch.cuda.synchronize()
            par = check_parity(ref_logits, be, samples, spec, precision=be.precision)
            plain = getattr(be, "_forward", be.run_device)  # kernels of one un-graphed call
            info[name] = {"prepare_s": round(time.perf_counter() - start, 1),
                          "kernels_b1": round(_kernel_profile(lambda: plain(inputs[1][0]), 1)["kernels_per_call"]),
                          "describe": be.describe(), "parity": par.to_dict() | {"per_image": None}}
        except Exception as exc:  # noqa: BLE001 - a measurement script: report the row, go on
            print(f"{name}: FAILED {type(exc).__name__}: {exc}"[:500], flush=True)
            return
        backends[name] = be
        print(f"{name}: ready in {info[name]['prepare_s']} s; {par.summary()}", flush=True)

    for name, options in _rows(names).items():
        prepare(name, lambda o=options: TorchBackend(ckpt, device="cuda", options=o))
    aoti_dir = Path(args.aoti) if args.aoti else None
    if export is not None:
        export.wait(timeout=900)
        found = sorted((out / "exports").glob("*_aoti-cuda-fp16/manifest.json"))
        aoti_dir = found[0].parent if found else None
        print(f"aoti export rc={export.returncode}: {aoti_dir}", flush=True)
    if aoti_dir is not None:
        for name, graph in (("aoti-fp16", False), ("aoti-fp16-graph", True)):
            if name in names:
                prepare(name, lambda g=graph: open_backend(aoti_dir, device="cuda", cuda_graph=g))

    while args.wait_pid and Path(f"/proc/{args.wait_pid}").exists():  # keep the GPU to ourselves
        time.sleep(1)
    timings: dict[str, dict[int, list[float]]] = {n: {b: [] for b in inputs} for n in backends}
    per_round = {b: max(1, args.iters // args.rounds) if b == 1 else max(2, 30 // args.rounds) for b in inputs}
    for _ in range(args.rounds):
        for name, be in backends.items():
            for b, n in per_round.items():
                k = iter(range(10**9))
                timings[name][b] += time_cuda(
                    lambda be=be, b=b, k=k: be.run_device(inputs[b][next(k) % 4]),
                    warmup=3, iters=n,
                )
    rows = []
    ref_b1 = None
    for name in backends:
        for b, seconds in timings[name].items():
            ms = 1000 * np.asarray(seconds)
            p50 = float(np.median(ms))
            ref_b1 = p50 if (name == "eager-fp32" and b == 1) else ref_b1
            rows.append({"row": name, "batch": b, "p50_ms": p50, "p90_ms": float(np.percentile(ms, 90)),
                         "img_per_s": b * 1000 / p50, "calls": len(ms), **info[name]})
    if args.profile:
        for r in rows:
            be, b = backends[r["row"]], r["batch"]
            r["kernel_profile"] = _kernel_profile(lambda be=be, b=b: be.run_device(inputs[b][0]))
    for r in rows:
        r["speedup_vs_eager_fp32_b1"] = (ref_b1 / r["p50_ms"]) if (ref_b1 and r["batch"] == 1) else None
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "samples": len(samples.names), "inductor": inductor,
              "argv": sys.argv[1:], "rows": rows}
    (out / "fast_gpu.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("\n| row | batch | p50 ms | p90 ms | img/s | x eager b1 | kernels b1 | agreement | dDice pp |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        par, sp = r["parity"], r["speedup_vs_eager_fp32_b1"]
        print(f"| {r['row']} | {r['batch']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
              f"{r['img_per_s']:.0f} | {'' if sp is None else f'{sp:.1f}x'} | {r['kernels_b1']} | "
              f"{par['agreement']:.4%} | {par['dice_delta_pp']:+.3f} |")
    for r in rows:
        kp = r.get("kernel_profile")
        if kp:
            print(f"\n{r['row']} b{r['batch']}: wall {kp['wall_ms_per_call']:.3f} ms/call, kernels "
                  f"{kp['kernel_ms_per_call']:.3f} ms/call in {kp['kernels_per_call']:.0f} kernels")
            for k in kp["top"]:
                print(f"  {k['ms_per_call']:.4f} ms  {k['name']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

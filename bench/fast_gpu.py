"""H100 measurement of the fast GPU path against the reference PyTorch usage (issue 7).

Run on a CUDA machine (needs only torch, numpy, pillow, safetensors, tqdm)::

    python -m qtseg.bench.fast_gpu --out DIR [--checkpoint CKPT] [--compile]

Rows, all in one process and one run so ratios are comparable:

* reference: the model as loaded (BatchNorm not folded, NCHW), eager FP32,
  batch 1 -- what a user of the authors' code runs -- and eager AMP (FP16
  autocast) at batch 32;
* ours: :class:`~qtseg.backends.torch_cuda_backend.TorchCudaBackend`
  variants (FP32/FP16, CUDA graphs, channels_last, optional torch.compile)
  at batch 1, 32 and 128.

Timing: CUDA events around each call after warm-up, median of N calls;
inputs are real preprocessed images (never zeros), rotated between calls.
Parity of every path vs FP32 eager on the bundled samples uses the export
gate's thresholds. Writes ``fast_gpu.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch


def _time_device(fn: Callable[[torch.Tensor], torch.Tensor], inputs: list[torch.Tensor],
                 warmup: int, iters: int) -> list[float]:
    """Milliseconds per call, measured with CUDA events."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    torch.cuda.synchronize()
    times = []
    for i in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(inputs[i % len(inputs)])
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def _kernel_count(fn: Callable[[], object]) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def _parity(ref: np.ndarray, out: np.ndarray, gts: list[np.ndarray], spec) -> dict:
    from qtseg.metrics import score_image

    ref_masks = [spec.postprocess(r, g.shape) for r, g in zip(ref, gts)]
    masks = [spec.postprocess(o, g.shape) for o, g in zip(out, gts)]
    agree = float(np.mean([(a == b).mean() for a, b in zip(ref_masks, masks)]))
    d_ref = np.mean([score_image(m, g).dice for m, g in zip(ref_masks, gts)])
    d_out = np.mean([score_image(m, g).dice for m, g in zip(masks, gts)])
    return {"max_abs_diff": float(np.abs(ref - out).max()), "agreement": agree,
            "dice_delta_pp": float((d_out - d_ref) * 100)}


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def _cells(row: dict) -> list[str]:
    par = row["parity"] or {}
    return [
        row["path"], str(row["batch"]), f"{row['p50_ms']:.3f}", f"{row['img_per_s']:.0f}",
        _fmt(row["speedup_vs_ref_b1"], "{:.1f}x"), _fmt(row["throughput_vs_amp_b32"], "{:.2f}x"),
        f"{row['tflops']:.1f}", str(row.get("kernels") or ""),
        _fmt(par.get("agreement"), "{:.3%}"), _fmt(par.get("max_abs_diff"), "{:.2e}"),
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints a markdown table and writes OUT/fast_gpu.json."""
    p = argparse.ArgumentParser(prog="python -m qtseg.bench.fast_gpu", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/fast_gpu")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--iters", type=int, default=200)
    p.add_argument("--compile", action="store_true", help="also measure torch.compile + CUDA graphs")
    args = p.parse_args(argv)

    import qtseg
    from qtseg.backends.torch_cuda_backend import TorchCudaBackend
    from qtseg.data.folder import discover, load_pair
    from qtseg.models.complexity import measure

    if not torch.cuda.is_available():
        print("error: no CUDA GPU", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    model, spec = qtseg.load(args.checkpoint, device="cuda")
    pairs = [load_pair(s) for s in discover(qtseg.SAMPLES_DIR)]
    gts = [m for _, m in pairs]
    x_np = spec.preprocess([im for im, _ in pairs])  # (S, 3, 512, 512)
    x_all = torch.from_numpy(x_np).to(dev)
    macs = measure(model, (1, 3, *spec.input_size)).macs

    def batches(bs: int, dtype=torch.float32) -> list[torch.Tensor]:
        idx = torch.arange(bs * 4) % len(x_all)
        return [x_all[idx[i * bs:(i + 1) * bs]].to(dtype).contiguous() for i in range(4)]

    with torch.inference_mode():
        ref_logits = model(x_all).float().cpu().numpy()

    rows = []

    def record(name: str, batch: int, times: list[float], parity: dict | None, **extra) -> None:
        p50 = statistics.median(times)
        row = {"path": name, "batch": batch, "p50_ms": p50, "mean_ms": statistics.fmean(times),
               "p90_ms": float(np.percentile(times, 90)), "img_per_s": batch * 1000.0 / p50,
               "tflops": 2 * macs * batch / (p50 / 1000) / 1e12, "parity": parity, **extra}
        rows.append(row)
        print(f"{name:48s} b{batch:<4d} p50 {p50:8.3f} ms  {row['img_per_s']:9.0f} img/s", flush=True)

    iters = args.iters
    # --- reference usage -------------------------------------------------
    with torch.inference_mode():
        record("reference eager fp32 (unfused, NCHW)", 1,
               _time_device(model, batches(1), 10, iters), None,
               kernels=_kernel_count(lambda: model(x_all[:1])))
        def amp(x):
            with torch.autocast("cuda", dtype=torch.float16):
                return model(x)
        with torch.autocast("cuda", dtype=torch.float16):
            amp_logits = model(x_all).float().cpu().numpy()
        record("reference eager AMP fp16", 32, _time_device(amp, batches(32), 5, max(20, iters // 10)),
               _parity(ref_logits, amp_logits, gts, spec))

    # --- our fast paths ----------------------------------------------------
    variants = [
        ("fp32 + BN fold + channels_last + CUDA graph", dict(precision="fp32")),
        ("fp16 + BN fold (eager, no graph)", dict(precision="fp16", cuda_graphs=False)),
        ("fp16 + BN fold + NCHW + CUDA graph", dict(precision="fp16", channels_last=False)),
        ("fp16 + BN fold + channels_last + CUDA graph", dict(precision="fp16")),
    ]
    if args.compile:
        variants.append(("fp16 + torch.compile + CUDA graph", dict(precision="fp16", compile=True)))
    for name, opts in variants:
        fresh, _ = qtseg.load(args.checkpoint, device="cpu")
        t0 = time.time()
        be = TorchCudaBackend(fresh, **opts)
        out = np.concatenate([be.run_device(x_all[i:i + 4].to(be.dtype)).float().cpu().numpy()
                              for i in range(0, len(x_all), 4)])
        prep_s = time.time() - t0
        par = _parity(ref_logits, out, gts, spec)
        for bs in (1, 32, 128):
            n = iters if bs == 1 else max(20, iters // 10)
            kernels = _kernel_count(lambda: be.run_device(x_all[:1].to(be.dtype))) if bs == 1 else None
            record(name, bs, _time_device(be.run_device, batches(bs, be.dtype), 5, n), par,
                   prepare_s=round(prep_s, 1), kernels=kernels)
        be.close()
        torch.cuda.empty_cache()

    ref_b1 = rows[0]["p50_ms"]
    ref_b32 = rows[1]["img_per_s"]
    for row in rows:
        row["speedup_vs_ref_b1"] = ref_b1 / row["p50_ms"] if row["batch"] == 1 else None
        row["throughput_vs_amp_b32"] = row["img_per_s"] / ref_b32 if row["batch"] > 1 else None
    result = {
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "macs_per_image": macs, "input": list(spec.input_size),
        "samples": len(x_all), "rows": rows,
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "fast_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    print("\n| path | batch | p50 ms | img/s | x ref b1 | x AMP b32 | TFLOP/s | kernels | agreement | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(_cells(r)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Where the fast GPU path spends its time: CUDA-event timing + a kernel table per batch.

    python tools/gpu/profile_fast.py --out DIR [--batches 1,128] [--modes default]

For each torch.compile mode, builds the FP16 + BN-folded + channels_last
model on the bundled checkpoint, times CUDA-graph replays (events, median of
many) and profiles one un-graphed call per batch, writing the kernel table
(grouped by kernel name, sorted by device time) to ``DIR/profile_<mode>.txt``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _events(fn, iters: int) -> float:
    """Median milliseconds of ``fn`` between CUDA events (after 10 warm-up calls)."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main() -> int:
    """Entry point."""
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--batches", default="1,128")
    p.add_argument("--modes", default="default")
    args = p.parse_args()
    from torch.profiler import ProfilerActivity, profile

    import qtseg
    from qtseg.backends.torch_cuda_backend import TorchCudaBackend

    torch.backends.cudnn.benchmark = True
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for mode in args.modes.split(","):
        model, spec = qtseg.load(None, device="cpu")
        if mode != "eager":
            import torch._inductor.config as icfg

            icfg.max_autotune = mode == "max-autotune"
        be = TorchCudaBackend(model, precision="fp16", compile=mode != "eager")
        lines = []
        for b in (int(v) for v in args.batches.split(",")):
            x = torch.rand(b, 3, *spec.input_size, device="cuda", dtype=torch.float16)
            graph_ms = _events(lambda be=be, x=x: be.run_device(x), 100 if b == 1 else 20)
            with torch.inference_mode():
                for _ in range(3):
                    be._forward(x)
                torch.cuda.synchronize()
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    be._forward(x)
                    torch.cuda.synchronize()
            kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
            busy = sum(e.device_time for e in kernels) / 1000.0
            head = (
                f"mode {mode} batch {b}: graph replay p50 {graph_ms:.3f} ms "
                f"({b * 1000 / graph_ms:.0f} img/s); {len(kernels)} device activities, "
                f"summed kernel time {busy:.3f} ms"
            )
            print(head, flush=True)
            table = prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=40)
            lines += [head, table, ""]
        (out / f"profile_{mode}.txt").write_text("\n".join(lines))
        be.close()
        del be, model
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

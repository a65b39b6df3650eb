"""GPU measurements of QTSeg against its peers (issue 8): training memory and latency.

Run on a CUDA machine (torch only)::

    python tools/gpu/peers_gpu.py --out DIR

* HRMedSeg training memory at batch 16, 1024x1024 (the paper's 0.59 GB
  claim): peak ``torch.cuda.max_memory_allocated`` over one AdamW step
  (forward, backward, update) in FP32 and with bf16 autocast, reported in
  total and above the static state (weights + gradients + optimizer).
* Inference latency at batch 1 (eager FP32 and AMP FP16, CUDA events, median)
  of qtseg-v2 @512, hrmedseg @512 and @1024 and icmoe @256 (random weights).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def _train_memory(name: str, size: int, batch: int, amp: bool) -> dict:
    from qtseg.models import create
    from qtseg.training.objectives import objective_for

    torch.cuda.empty_cache()
    model = create(name, img_size=(size, size)).cuda().train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.rand(batch, 3, size, size, device="cuda")
    y = (torch.rand(batch, size, size, device="cuda") > 0.8).long()
    objective = objective_for(name)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = objective(model, x, y)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()

    step()  # creates gradients and optimizer state
    torch.cuda.synchronize()
    static = torch.cuda.memory_allocated() - x.numel() * 4 - y.numel() * 8
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - x.numel() * 4 - y.numel() * 8
    return {"model": name, "img": size, "batch": batch, "amp_bf16": amp,
            "peak_gb": peak / 1e9, "static_gb": static / 1e9, "activations_gb": (peak - static) / 1e9}


def _latency(name: str, size: int, amp: bool, iters: int = 50) -> dict:
    from qtseg.models import create
    from qtseg.timing import time_cuda

    model = create(name, img_size=(size, size)).cuda().eval()
    xs = [torch.rand(1, 3, size, size, device="cuda") for _ in range(4)]
    calls = iter(range(10**9))

    def call() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            model(xs[next(calls) % 4])

    seconds = time_cuda(call, warmup=10, iters=iters)
    return {"model": name, "img": size, "amp_fp16": amp, "p50_ms": 1000 * float(np.median(seconds))}


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints the tables and writes OUT/peers_gpu.json."""
    p = argparse.ArgumentParser(prog="tools/gpu/peers_gpu.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/peers_gpu")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU", file=sys.stderr)
        return 2
    memory = []
    for amp in (False, True):
        try:
            memory.append(_train_memory("hrmedseg", 1024, 16, amp))
        except torch.cuda.OutOfMemoryError as exc:
            memory.append({"model": "hrmedseg", "amp_bf16": amp, "error": str(exc).splitlines()[0]})
        print(memory[-1], flush=True)
    memory.append(_train_memory("qtseg-v2", 512, 16, True))
    print(memory[-1], flush=True)
    latency = []
    for name, size in (("qtseg-v2", 512), ("hrmedseg", 512), ("hrmedseg", 1024), ("icmoe", 256)):
        for amp in (False, True):
            latency.append(_latency(name, size, amp))
            print(latency[-1], flush=True)
            torch.cuda.empty_cache()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "train_memory": memory, "latency_b1": latency}
    (out / "peers_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
